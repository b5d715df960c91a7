"""The benchmark: the helpers' engine against the classic loop (benchmarks/reference_loop.py).

    python benchmarks/run.py              # the full benchmark (about half an hour on 2 CPU cores)
    python benchmarks/run.py --threads 1  # the same on a CPU shared with other jobs (as ours was)
    python benchmarks/run.py --quick      # a smoke run: tiny sizes, few steps, results in a temp folder

Every figure is a ratio to the reference measured in the same run, steps of the two
interleaved, because shared machines are noisy; absolute times are only worth quoting
on a GPU. It prints a table, writes benchmarks/results/<machine>.json (the machine's
description, the load average before and after, every timing) and draws
benchmarks/results/<machine>.png (seconds per step against pixel count).

Figures:
1. seconds per step at 128, 256 and 512 px, same layers and loss as the helpers' defaults;
2. time to quality at 128 px, against the classic loop's picture after 1000 steps (the painting
   cut to the photo's shape): (a) the engine given the classic loop's own objective, until that
   objective is as low (speed alone); (b) the defaults, until the package's own content and
   style distances are both as low (`time_to_quality`);
3. peak memory at 256, 512 and 1024 px: RSS on a CPU, each in a fresh process;
   torch.cuda.max_memory_allocated on a GPU, in process, after two warm-up steps;
4. previews: the cost of a callback that copies the image to the CPU every 10 steps;
5. bfloat16 against float32: the same run in both, judged by float32 losses and pixels;
6. helpers.memory's estimate of a run's peak against the measured one (peak RSS in a fresh
   process on a CPU, torch.cuda.max_memory_allocated on a GPU), at several sizes, in float32
   and bfloat16, with Adam and L-BFGS (section "estimate");
7. start-up: the wall time of a fresh `python -m helpers --size 64 --steps 1` (import,
   weights, one step), beside the classic loop's (torch and torchvision imported, the weights
   decoded, one step), warm (caches filled) and, in the full run, cold (a new machine: weights
   decoded and "auto" precision measured); and time to quality as a whole process, start-up
   included; with "auto" precision's choice and the timings it was based on;
7. on a GPU only: seconds per step at 512, 1024 and 2048 px (also without the CUDA graph,
   in float16 and in float32), a check that the graph takes the same steps, and the
   largest size whose run fits in a Colab T4's 16 GB (14.5 GiB for PyTorch), found with
   torch.cuda.set_per_process_memory_fraction, for the helpers in auto precision,
   float16 and float32 and for the reference.
"""

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import helpers  # noqa: E402
from benchmarks import reference_loop  # noqa: E402
from benchmarks.reference_loop import ReferenceLoop  # noqa: E402
from helpers import speed  # noqa: E402
from helpers.device import bf16_supported, cpu_name  # noqa: E402
from helpers.config import StyleTransferConfig  # noqa: E402
from helpers.network import cached_vgg19  # noqa: E402
from helpers.optimization import StyleTransfer  # noqa: E402

CONTENT, STYLE = "city", "starry_night"
SECTIONS = ("steps", "quality", "startup", "bf16", "previews", "memory", "estimate", "gpu")
GIB = 1024 ** 3

FULL = {
    "step_sizes": [128, 256, 512], "step_rounds": {128: 10, 256: 6, 512: 3},
    "quality_px": 128, "reference_steps": 1000, "helpers_max_steps": 1000, "chunk": 50, "bf16_steps": None,
    "memory_sizes": [256, 512, 1024], "memory_steps": 1,  # the first step reaches the peak
    # (size, precision, optimizer, steps): L-BFGS's history grows by one pair a step, up to 50
    "estimate_runs": [(px, precision, "adam", 2) for px in (128, 256, 512, 768, 1024)
                      for precision in ("float32", "bfloat16")]
                     + [(px, precision, "lbfgs", 3) for px in (256, 512) for precision in ("float32", "bfloat16")]
                     + [(128, "float32", "lbfgs", 60)],
    "preview_px": 256, "preview_rounds": 3, "preview_block": 10,
    "gpu_sizes": [512, 1024, 2048], "gpu_block": {512: 50, 1024: 20, 2048: 5},
    "gpu_fit_sizes": [1024, 1536, 2048, 2560, 3072, 3584, 4096, 5120],
    "gpu_fit_gib": 14.5,  # a T4's "16 GB" are about 14.7 GiB to PyTorch, less the CUDA context
    "startup_rounds": 5, "startup_warmup": True, "startup_cold": True,
}
QUICK = {
    "step_sizes": [48, 64], "step_rounds": {48: 2, 64: 2},
    "quality_px": 48, "reference_steps": 20, "helpers_max_steps": 20, "chunk": 10, "bf16_steps": 20,
    "memory_sizes": [48], "memory_steps": 1,
    "estimate_runs": [(64, "float32", "adam", 1)],
    "preview_px": 48, "preview_rounds": 1, "preview_block": 10,
    "gpu_sizes": [64, 128], "gpu_block": {64: 2, 128: 2},
    "gpu_fit_sizes": [64, 128], "gpu_fit_gib": 14.5,
    "startup_rounds": 1, "startup_warmup": False, "startup_cold": False,
}


# --- the machine -------------------------------------------------------------------------

def describe_machine(device):
    info = {
        "device": str(device), "cpu": cpu_name(), "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "bf16": bf16_supported(device), "torch": torch.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / GIB, 1),
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
        name = props.name
    else:
        name = f"{info['cpu']} {info['threads']}threads"
    slug = re.sub(r"[^a-z0-9]+", "-", f"{device.type} {name}".lower()).strip("-")
    return info, slug


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- the engines -------------------------------------------------------------------------

def images(px, device):
    content = helpers.bundled_images("content")[CONTENT]
    style = helpers.bundled_images("style")[STYLE]
    return (helpers.load_image(content, px).to(device), helpers.load_image(style, px).to(device))


def make_reference(px, device, model):
    content, style = images(px, device)
    return ReferenceLoop(content, style, model.features, model.preprocess)


def make_helpers(px, device, init_image=None, **options):
    content, style = images(px, device)
    return StyleTransfer(content, style, StyleTransferConfig(size_px=px, device=str(device), **options),
                         init_image=init_image)


def timed(device, fn):
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def variants_for(device):
    """The helpers' other settings timed beside their defaults, by device."""
    if device.type == "cuda":
        return {"helpers_no_graph": {"cuda_graphs": False}, "helpers_float16": {"precision": "float16"},
                "helpers_float32": {"precision": "float32"}}
    return {"helpers_float32": {"precision": "float32"}}


def steps_interleaved(px, rounds, block, device, model, variants=None):
    """Seconds per step of the reference, the helpers' defaults and `variants` (name ->
    options), blocks of `block` steps alternating (the order reversed every round), after
    two warm-up blocks each (allocations, cuDNN autotune, recording the CUDA graph)."""
    engines = {"reference": make_reference(px, device, model), "helpers": make_helpers(px, device)}
    for name, options in (variants or {}).items():
        engines[name] = make_helpers(px, device, **options)

    def block_of(name):
        engine = engines[name]
        if name == "reference":
            return lambda: [engine.step() for _ in range(block)]
        return lambda: engine.run(block)

    times = {name: [] for name in engines}
    for name in engines:
        for _ in range(2):
            timed(device, block_of(name))
    order = list(engines)
    for r in range(rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            times[name].append(timed(device, block_of(name)) / block)
    result = {"px": px, "hw": list(engines["helpers"].content.shape[-2:]), "rounds": rounds, "block": block}
    for name, values in times.items():
        result[name + "_s_per_step"] = statistics.median(values)
        result[name + "_all"] = values
    ref = result["reference_s_per_step"]
    result["ratio"] = result["helpers_s_per_step"] / ref
    # The per-round ratio shows the noise: steps of a round ran under the same load.
    per_round = [h / r for h, r in zip(times["helpers"], times["reference"])]
    result["ratio_per_round_min_max"] = [min(per_round), max(per_round)]
    for name in variants or {}:
        result["ratio_" + name.removeprefix("helpers_")] = result[name + "_s_per_step"] / ref
    if "helpers_float32_s_per_step" in result:  # the defaults' "auto" precision against float32
        result["auto_vs_float32"] = result["helpers_s_per_step"] / result["helpers_float32_s_per_step"]
        result["auto_dtype"] = str(engines["helpers"].autocast_dtype or torch.float32).removeprefix("torch.")
    engines.clear()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


# --- start-up, and "auto" precision's choice ----------------------------------------------

#: The classic loop's start-up, in a fresh process: what a tutorial notebook's first cells do
#: (import torch and torchvision, build torchvision's VGG-19, decode the original weights),
#: then one step at 64 px. argv: ROOT, device.
REFERENCE_STARTUP = """
import sys
sys.path.insert(0, sys.argv[1])
import torch, torchvision
from benchmarks.reference_loop import ReferenceLoop
from helpers.images import load_image
from helpers.network import CaffePreprocess, _decode_caffe, caffe_weights_path
device = torch.device(sys.argv[2])
features = torchvision.models.vgg19(weights=None).features
features.load_state_dict(_decode_caffe(caffe_weights_path()))
content = load_image(sys.argv[1] + "/images/content/city.jpg", 64).to(device)
style = load_image(sys.argv[1] + "/images/style/starry_night.jpg", 64).to(device)
float(ReferenceLoop(content, style, features.to(device), CaffePreprocess().to(device)).step())
"""


def startup_seconds(kind, device, workdir, cache=None):
    """Wall seconds of one fresh process: `python -m helpers --size 64 --steps 1` for
    "helpers", `REFERENCE_STARTUP` for "reference". `cache`: another NST_CACHE_DIR (an empty
    one is a machine that has never run the helpers). The child gets this process's number
    of threads, so that it finds the precision "auto" measured for it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS=str(torch.get_num_threads()))
    if cache is not None:
        env["NST_CACHE_DIR"] = str(cache)
    if kind == "helpers":
        command = [sys.executable, "-m", "helpers", "--size", "64", "--steps", "1", "-q", "--overwrite",
                   "--device", device.type, "-o", str(Path(workdir) / "startup.png")]
    else:
        command = [sys.executable, "-c", REFERENCE_STARTUP, str(ROOT), device.type]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{kind} start-up failed: {(done.stderr or done.stdout).strip()[-300:]}")
    return seconds


def startup(cfg, device):
    """Median start-up of the helpers and of the classic loop, `startup_rounds` fresh
    processes each, interleaved, after one of each that fills the caches (not counted); in
    the full run also the helpers' cold start, with an empty cache."""
    with tempfile.TemporaryDirectory() as workdir:
        for kind in (("helpers", "reference") if cfg["startup_warmup"] else ()):
            startup_seconds(kind, device, workdir)
        times = {"helpers": [], "reference": []}
        for r in range(cfg["startup_rounds"]):
            for kind in (("helpers", "reference") if r % 2 == 0 else ("reference", "helpers")):
                times[kind].append(startup_seconds(kind, device, workdir))
        result = {"what": "python -m helpers --size 64 --steps 1 in a fresh process, wall seconds",
                  "rounds": cfg["startup_rounds"], "helpers_all": times["helpers"], "reference_all": times["reference"],
                  "helpers_s": statistics.median(times["helpers"]), "reference_s": statistics.median(times["reference"])}
        result["ratio"] = result["helpers_s"] / result["reference_s"]
        if cfg["startup_cold"]:
            cold = Path(workdir) / "empty-cache"
            cold.mkdir()
            result["helpers_cold_s"] = startup_seconds("helpers", device, workdir, cache=cold)
    return result


def auto_precision(device, model):
    """What precision "auto" picks here, and the timings it picked by (measured now if this
    machine has none cached: see helpers.speed.measured_precision)."""
    candidates = speed.candidate_precisions(device)
    choice = speed.measured_precision(device, model)
    entry = speed._read_json(speed.precision_cache_path()).get(speed.machine_key(device), {})
    return {"candidates": candidates, "choice": choice, "machine_key": speed.machine_key(device),
            "measured_seconds_per_pass": entry.get("seconds_per_step"), "measured_px": entry.get("px"),
            "measured_on": entry.get("measured")}


def whole_process_time_to_quality(quality, start):
    """Time to quality with each engine's start-up added: what a user waits, from the
    command to a picture as good as the classic loop's after its steps; for (a) and (b)."""
    out = {"reference_s": start["reference_s"] + quality["reference_seconds"]}
    for name in ("same_objective", "defaults_both_terms"):
        seconds = quality.get(name, {}).get("seconds_to_reach")
        if seconds is not None:
            out[name] = {"helpers_s": start["helpers_s"] + seconds,
                         "ratio": (start["helpers_s"] + seconds) / out["reference_s"]}
    return out


# --- time to quality ---------------------------------------------------------------------

def same_shape_images(px, device):
    """The photo at `px`, and the painting cut to the photo's aspect and resized to its exact
    shape. With equal shapes the classic loop's raw Gram error is a fixed multiple of ours at
    every layer, so the engine can be given the classic loop's objective exactly."""
    content = helpers.load_image(helpers.bundled_images("content")[CONTENT], px).to(device)
    style = helpers.load_image(helpers.bundled_images("style")[STYLE], 2 * px).to(device)
    (h, w), (sh, sw) = content.shape[-2:], style.shape[-2:]
    ch, cw = (sh, round(sh * w / h)) if sh * w <= sw * h else (round(sw * h / w), sw)
    top, left = (sh - ch) // 2, (sw - cw) // 2
    style = torch.nn.functional.interpolate(style[..., top:top + ch, left:left + cw], size=(h, w),
                                            mode="bilinear", antialias=True, align_corners=False)
    return content, style.clamp(0, 1)


def classic_objective_weights(engine, reference):
    r"""Weights that make `engine`'s loss the classic loop's own objective times one factor,
    for a photo and painting of equal shape (tv_weight 0, as the classic loop has no TV).

    The classic loop: mean (F−P)² at conv4_2 = 2/(N M) · L_content (the paper's ½Σ(F−P)²), and
    at each style layer β w_l mean (G−A)²/(N·M) with raw Gram matrices = β w_l · 4M/N · E_l.
    The engine's terms are a·L_content and b_l·E_l per unit weight (`_paper_factors`), so with
    content weight 1 the factor is k = a·N M/2 and layer l needs a style weight × share of
    k β w_l 4M_l / (N_l b_l)."""
    a, b = engine._paper_factors()
    (name,) = engine.config.content_layers
    k = a * engine.content_targets[name].numel() / 2
    wanted = {}
    for conv, w in reference_loop.STYLE_WEIGHTS.items():
        _, n, h, wd = reference.content_features[conv].shape
        layer = "relu" + conv[len("conv"):]
        wanted[layer] = k * reference_loop.STYLE_WEIGHT * w * 4 * h * wd / (n * b[layer])
    total = sum(wanted.values())
    return {"content_weight": 1.0, "style_weight": total, "tv_weight": 0.0,
            "style_layer_weights": tuple(wanted[layer] / total for layer in engine.config.style_layers)}


def run_until(engine, reached, device, steps_cap, chunk, clock, snapshots):
    """Run `engine` in chunks of `chunk` steps (seconds added to clock[0]; a snapshot every
    report_every steps) until `reached(image)` holds for a snapshot or `steps_cap` steps are
    run; return (step, seconds) of the first snapshot that reached it, or None. The judging
    is not timed."""
    def keep(progress):
        snapshots.append((progress.step, clock[0] + progress.elapsed_s, progress.image.detach().float().clamp(0, 1)))

    checked = 0
    while True:
        for step, seconds, image in snapshots[checked:]:
            if reached(image):
                return step, seconds
        checked = len(snapshots)
        if engine.step >= steps_cap:
            return None
        n = min(chunk, steps_cap - engine.step)
        clock[0] += timed(device, lambda: engine.run(n, callback=keep))


def time_to_quality(cfg, device, model):
    """How long the engine takes to make a picture as good as the classic loop's after
    `reference_steps` steps (photo and painting of equal shape at `quality_px`), asked twice:

    (a) speed alone: the engine given the classic loop's own objective
        (`classic_objective_weights`), until that objective, on the picture clipped to [0, 1]
        in float32, is as low as the classic loop's;
    (b) the defaults (the tutorial's per-layer balance), judged on both terms at once by the
        package's own measure (`figure3.Judge`: relu4_2's content distance and the
        per-layer-normalized style distance): until both are at or below the classic loop's.
    The three runs are interleaved chunk by chunk while the classic loop runs."""
    from helpers.figure3 import Judge

    px, chunk = cfg["quality_px"], cfg["chunk"]
    content, style = same_shape_images(px, device)
    ref = ReferenceLoop(content, style, model.features, model.preprocess)

    def engine(**options):
        return StyleTransfer(content, style, StyleTransferConfig(size_px=px, device=str(device), **options))

    same, defaults = engine(), engine()
    weights = classic_objective_weights(same, ref)
    same.update(**weights)
    check = engine(precision="float32", **weights)  # the mapping, checked on two pictures
    with torch.no_grad():
        pictures = (content, (content * 0.5 + style * 0.5))
        factors = [float(check.losses(x)["total"]) / float(ref.losses(x)["total"]) for x in pictures]

    def classic(image):
        with torch.no_grad():
            return {k: float(v) for k, v in ref.losses(image.float().clamp(0, 1)).items()}

    judge = Judge(content, style, px)
    runs = {"same_objective": same, "defaults_both_terms": defaults}
    clocks = {name: [0.0] for name in runs}
    snaps = {name: [(0, 0.0, e.image.detach().float().clamp(0, 1))] for name, e in runs.items()}
    reference_seconds = 0.0
    default_steps = defaults.config.steps
    while ref.step_count < cfg["reference_steps"]:
        n = min(chunk, cfg["reference_steps"] - ref.step_count)
        reference_seconds += timed(device, lambda: [ref.step() for _ in range(n)])
        for name, e in runs.items():  # the engines' first steps, interleaved with the classic loop's
            run_until(e, lambda image: False, device, min(e.step + chunk, default_steps), chunk,
                      clocks[name], snaps[name])
    target_classic, target_judge = classic(ref.image()), judge(ref.image())
    tests = {"same_objective": lambda image: classic(image)["total"] <= target_classic["total"],
             "defaults_both_terms": lambda image: all(v <= target_judge[k] for k, v in judge(image).items())}
    result = {"px": px, "images": [CONTENT, STYLE + " (cut to the photo's shape)"],
              "reference_steps": cfg["reference_steps"], "reference_seconds": reference_seconds,
              "reference_s_per_step": reference_seconds / cfg["reference_steps"],
              "classic_objective_factor_check": factors,
              "same_objective_weights": {k: list(v) if isinstance(v, tuple) else v for k, v in weights.items()},
              "reference_classic_objective": target_classic, "reference_judged": target_judge}
    for name, e in runs.items():
        reached = run_until(e, tests[name], device, cfg["helpers_max_steps"], chunk, clocks[name], snaps[name])
        last = snaps[name][-1][2]
        row = {"steps_run": e.step, "seconds_total": clocks[name][0], "s_per_step": clocks[name][0] / max(e.step, 1),
               "at_last_step": classic(last) if name == "same_objective" else judge(last),
               "steps_to_reach": None, "seconds_to_reach": None, "ratio": None}
        if reached is not None:
            row.update(steps_to_reach=reached[0], seconds_to_reach=reached[1], ratio=reached[1] / reference_seconds)
        result[name] = row
    return result


def bf16_vs_float32(px, device, steps=None, picture=None):
    """The helpers' defaults at `px`, run in bfloat16 and in float32, compared by float32
    losses and by pixels. `picture`: where to save content | float32 | bfloat16 | difference ×4."""
    bf16_engine = make_helpers(px, device)
    if bf16_engine.autocast_dtype is None:
        return {"skipped": "this device runs in float32 (no fast bfloat16)"}
    steps = steps or bf16_engine.config.steps  # default: the defaults' step count
    bf16_engine.run(steps)
    float_engine = make_helpers(px, device, precision="float32")
    float_engine.run(steps)
    a = bf16_engine.image.detach().float().clamp(0, 1)
    b = float_engine.image.detach().float().clamp(0, 1)
    with torch.no_grad():
        loss_bf16 = float(float_engine.losses(a)["total"])
        loss_fp32 = float(float_engine.losses(b)["total"])
        start = float(float_engine.losses(float_engine.content)["total"])
    diff = (a - b).abs() * 255
    mse = float(((a - b) ** 2).mean())
    # For scale: the float32 run again from the photo plus invisible noise (±0.5/255, what saving
    # it as 8 bits does). Adam amplifies any tiny difference into different brush strokes.
    photo = bf16_engine.content.detach().cpu()
    noise = (torch.rand(photo.shape, generator=torch.Generator().manual_seed(1)) - 0.5) / 255
    nudged = make_helpers(px, device, precision="float32", init_image=(photo + noise).clamp(0, 1))
    nudged.run(steps)
    c = nudged.image.detach().float().clamp(0, 1)
    chaos = {"float32_nudged_start_loss": float(float_engine.losses(c)["total"]),
             "float32_vs_nudged_pixel_mean_abs_diff_0_255": float(((b - c).abs() * 255).mean())}
    if picture is not None:
        strip = torch.cat([bf16_engine.content.float().cpu(), b.cpu(), a.cpu(), ((a - b).abs() * 4).cpu()], dim=3)
        helpers.tensor_to_image(strip).save(picture)
    return {
        "px": px, "steps": steps,
        "helpers_loss_float32_run": loss_fp32, "helpers_loss_bfloat16_run": loss_bf16,
        "helpers_loss_at_start": start,
        "relative_loss_difference": (loss_bf16 - loss_fp32) / loss_fp32,
        "pixel_mean_abs_diff_0_255": float(diff.mean()), "pixel_max_abs_diff_0_255": float(diff.max()),
        "pixel_psnr_db": 10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12))).item(),
        **chaos,
    }


def preview_overhead(cfg, device):
    """Blocks of steps without and with a preview callback (copy the image to the CPU every
    10 steps), interleaved; plus the callback's own time, which noise cannot hide."""
    px, block = cfg["preview_px"], cfg["preview_block"]
    engine = make_helpers(px, device, report_every=10)
    spent = []

    def preview(progress):
        start = time.perf_counter()
        progress.image.detach().float().cpu().clamp(0, 1)
        spent.append(time.perf_counter() - start)

    timed(device, lambda: engine.run(block))
    plain, with_preview = [], []
    for r in range(cfg["preview_rounds"]):
        runs = [(plain, None), (with_preview, preview)]
        for times, callback in (runs if r % 2 == 0 else runs[::-1]):
            times.append(timed(device, lambda: engine.run(block, callback=callback)))
    loop = sum(with_preview)
    return {"px": px, "block": block, "rounds": cfg["preview_rounds"],
            "plain_s_per_step": statistics.median(plain) / block,
            "preview_s_per_step": statistics.median(with_preview) / block,
            "ratio": statistics.median(with_preview) / statistics.median(plain),
            "callback_seconds_total": sum(spent), "callback_share_of_loop": sum(spent) / loop}


# --- memory, each in a fresh process ---------------------------------------------------------

def _status_kib(field):
    match = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) * 1024 if match else None


def reset_peak_rss():
    """Start counting the peak RSS afresh (Linux: /proc/self/clear_refs); return the RSS now.

    Without this the peak would be that of loading the weights (torchvision first builds
    the whole VGG-19, classifier included), the same for both engines at small sizes."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kib("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss():
    try:
        return _status_kib("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def probe_memory(kind, px, steps, device_name, precision="auto", optimizer="adam"):
    """Run in a child process on a CPU: build one engine, take `steps` steps, print the peak RSS.
    (A GPU is probed in process: `probe_cuda_in_process`.)"""
    rss_import = _status_kib("VmRSS")  # the libraries alone, before any network is loaded
    device = helpers.pick_device(device_name)
    # Both load their network before the baseline: the reference a float32 copy, the helpers their cache.
    defaults = StyleTransferConfig()
    model = (helpers.load_vgg19("caffe", device=device) if kind == "reference" else
             cached_vgg19(defaults.weights, defaults.pooling, device, defaults.normalized_network))
    before = reset_peak_rss()
    if kind == "reference":
        engine = make_reference(px, device, model)
        for _ in range(steps):
            engine.step()
    else:
        engine = make_helpers(px, device, precision=precision, optimizer=optimizer,
                              learning_rate=1.0 if optimizer == "lbfgs" else defaults.learning_rate)
        engine.run(steps)
    out = {"kind": kind, "px": px, "rss_peak_bytes": peak_rss(), "rss_before_bytes": before,
           "rss_import_bytes": rss_import}
    if kind != "reference":
        out["hw"] = list(engine.content.shape[-2:])
        out["precision"] = str(engine.autocast_dtype or torch.float32).removeprefix("torch.")
    print("PROBE " + json.dumps(out))


def run_probe(kind, px, steps, device, timeout=1800, precision="auto", optimizer="adam"):
    command = [sys.executable, str(Path(__file__).resolve()), "--probe", kind, "--size", str(px),
               "--steps", str(steps), "--device", str(device), "--threads", str(torch.get_num_threads()),
               "--precision", precision, "--optimizer", optimizer]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    for line in done.stdout.splitlines():
        if line.startswith("PROBE "):
            return json.loads(line[6:])
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"kind": kind, "px": px, "error": tail[0][:300]}


def estimate_vs_measured(cfg, device):
    """helpers.memory's estimate of a run's peak against the measured peak, at several sizes, in
    both precisions and with both optimizers. On a CPU the measure is the peak RSS of a fresh
    process less its RSS after importing the libraries (what the estimate is compared with free
    memory for); on a GPU torch.cuda.max_memory_allocated over the whole run in process."""
    from helpers import memory

    rows = []
    content = helpers.bundled_images("content")[CONTENT]
    style = helpers.bundled_images("style")[STYLE]
    for px, precision, optimizer, steps in cfg["estimate_runs"]:
        if precision == "bfloat16" and not bf16_supported(device):
            continue
        config = StyleTransferConfig(size_px=px, device=str(device), precision=precision, optimizer=optimizer,
                                     steps=steps)
        estimate = memory.estimate_for(config, content, style, device=device, precision=precision)
        row = {"px": px, "precision": precision, "optimizer": optimizer, "steps": steps,
               "estimate_bytes": estimate.total, "estimate_parts": estimate.parts}
        if device.type == "cuda":
            import gc
            gc.collect()
            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            try:
                engine = make_helpers(px, device, precision=precision, optimizer=optimizer, steps=steps,
                                      learning_rate=1.0 if optimizer == "lbfgs" else 0.02)
                engine.run(steps)
                sync(device)
                row["measured_bytes"] = torch.cuda.max_memory_allocated(device) - base
                row["measure"] = "torch.cuda.max_memory_allocated"
            except torch.cuda.OutOfMemoryError as err:
                row["error"] = "out of memory: " + str(err).splitlines()[0][:200]
            engine = None
        else:
            probe = run_probe("helpers", px, steps, device, precision=precision, optimizer=optimizer)
            if "error" in probe:
                row["error"] = probe["error"]
            else:
                row["measured_bytes"] = probe["rss_peak_bytes"] - probe["rss_import_bytes"]
                row["measure"] = "peak RSS - RSS after import"
        if "measured_bytes" in row:
            row["ratio"] = row["estimate_bytes"] / row["measured_bytes"]
        rows.append(row)
    return rows


def peak_memory(cfg, device):
    rows = []
    for px in cfg["memory_sizes"]:
        if device.type == "cuda":  # 3 steps after 2: the CUDA graph is recorded at the third
            ref = probe_cuda_in_process("reference", px, 3, device)
            ours = probe_cuda_in_process("helpers", px, 3, device)
        else:
            ref = run_probe("reference", px, cfg["memory_steps"], device)
            ours = run_probe("helpers", px, cfg["memory_steps"], device)
        key = "cuda_max_allocated_bytes" if device.type == "cuda" else "rss_peak_bytes"
        row = {"px": px, "measure": "torch.cuda.max_memory_allocated" if device.type == "cuda" else "peak RSS",
               "reference": ref, "helpers": ours}
        if key in ref and key in ours:
            row["reference_mib"] = ref[key] / 2 ** 20
            row["helpers_mib"] = ours[key] / 2 ** 20
            row["ratio"] = ours[key] / ref[key]
            if device.type != "cuda":  # what the run itself added on top of the loaded libraries
                row["reference_run_mib"] = (ref[key] - ref["rss_before_bytes"]) / 2 ** 20
                row["helpers_run_mib"] = (ours[key] - ours["rss_before_bytes"]) / 2 ** 20
        rows.append(row)
    return rows


# --- the GPU figures ---------------------------------------------------------------------------

def probe_cuda_in_process(kind, px, steps, device, limit_gib=None, precision="auto", warmup=2):
    """`probe_memory` without a new process, for a GPU: torch.cuda's peak counter can be
    reset between runs, and starting CUDA again for every probe would cost more than the run.

    The whole run (warm-up included) must fit under `limit_gib`; the peak reported is that
    of the `steps` after `warmup` steps, because cuDNN's autotuning in the first steps
    borrows whatever memory is free as workspace (135 GiB on an H200), which says nothing
    about what the run needs."""
    import gc

    index = device.index if device.index is not None else torch.cuda.current_device()
    total = torch.cuda.get_device_properties(index).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (limit_gib * GIB if limit_gib else total) / total), index)
    gc.collect()
    torch.cuda.empty_cache()
    out = {"kind": kind, "px": px, "warmup_steps": warmup, "steps": steps}
    engine = None
    try:
        if kind == "reference":
            engine = make_reference(px, device, helpers.load_vgg19("caffe", device=device))
            run = lambda n: [engine.step() for _ in range(n)]  # noqa: E731
        else:
            engine = make_helpers(px, device, precision=precision)
            run = engine.run
        run(warmup)
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        run(steps)
        sync(device)
        out["cuda_max_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
        if kind != "reference":
            out["cuda_graph"] = engine.use_cuda_graph
    except torch.cuda.OutOfMemoryError as err:
        out["error"] = "out of memory: " + str(err).splitlines()[0][:200]
    finally:
        engine = run = None
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(1.0, index)
    return out


def gpu_figures(cfg, device, model):
    rows = []
    for px in cfg["gpu_sizes"]:
        try:
            rows.append(steps_interleaved(px, rounds=3, block=cfg["gpu_block"][px], device=device, model=model,
                                          variants=variants_for(device)))
        except torch.cuda.OutOfMemoryError as err:
            rows.append({"px": px, "error": f"out of memory: {str(err)[:200]}"})
        torch.cuda.empty_cache()
    fits = {}
    # A T4 has no fast bfloat16: there the helpers' "auto" is float16. Try each precision;
    # 2 + 3 steps, so that the CUDA graph (recorded at the third step) is part of the run.
    for kind, precision in (("helpers", "auto"), ("helpers", "float16"), ("helpers", "float32"),
                            ("reference", "auto")):
        largest = None
        for px in cfg["gpu_fit_sizes"]:
            probe = probe_cuda_in_process(kind, px, 3, device, limit_gib=cfg["gpu_fit_gib"], precision=precision)
            if "error" in probe:
                break
            largest = {"px": px, "max_allocated_gib": probe["cuda_max_allocated_bytes"] / GIB}
        fits[kind if kind == "reference" else f"helpers ({precision})"] = largest
    return {"steps": rows, "largest_fitting": fits, "limit_gib": cfg["gpu_fit_gib"]}


def cuda_graph_check(px, steps, device):
    """The same run with and without the CUDA graph, compared by their loss histories."""
    runs = {}
    for graphs in (False, True):
        engine = make_helpers(px, device, cuda_graphs=graphs)
        engine.run(steps)
        runs[graphs] = engine
    a = [h["total"] for h in runs[False].history]
    b = [h["total"] for h in runs[True].history]
    with torch.no_grad():
        judge = runs[False].losses
        final = [float(judge(runs[g].image)["total"]) for g in (False, True)]
    return {"px": px, "steps": steps, "graph_recorded": runs[True].graph is not None and runs[True].graph.graph is not None,
            "first_loss_no_graph": a[0], "first_loss_graph": b[0],
            "max_relative_difference_first_10_steps": max(abs(x - y) / abs(x) for x, y in zip(a[:10], b[:10])),
            "final_loss_no_graph": final[0], "final_loss_graph": final[1],
            "final_relative_difference": (final[1] - final[0]) / final[0]}


# --- report ------------------------------------------------------------------------------------

def fmt(x, spec=".2f"):
    return "n/a" if x is None else format(x, spec)


def table(results):
    lines = [f"machine: {results['machine_slug']}  (load average {results.get('load_average_start')} -> "
             f"{results.get('load_average_end')})", "",
             "figure                                   reference     helpers       ratio   target"]
    a = results.get("auto_precision")
    if a:
        measured = a.get("measured_seconds_per_pass")
        lines.append(f"precision auto picks {a['choice']} of {', '.join(a['candidates'])}"
                     + (f" (one pass at {a['measured_px']} px: "
                        + ", ".join(f"{k} {v:.3f}s" for k, v in measured.items()) + ")" if measured else
                        " (nothing to measure)"))
    for row in results.get("seconds_per_step", []):
        lines.append(f"s/step at {row['px']:>4} px                       {row['reference_s_per_step']:9.3f}s "
                     f"{row['helpers_s_per_step']:9.3f}s   {row['ratio']:6.2f}x  "
                     + ("<= 0.55x" if row["px"] == 256 else "        ")
                     + (f"   (float32 helpers {row['ratio_float32']:.2f}x)" if "ratio_float32" in row else ""))
        if "auto_vs_float32" in row:
            lines.append(f"    auto ({row['auto_dtype']}) / float32 at {row['px']:>4} px  "
                         f"{row['helpers_float32_s_per_step']:9.3f}s {row['helpers_s_per_step']:9.3f}s   "
                         f"{row['auto_vs_float32']:6.2f}x  <= 1.0x")
    q = results.get("time_to_quality")
    if q and "same_objective" in q:
        lines.append("time to quality at {} px: (a) the classic loop's own objective, (b) the defaults judged on "
                     "content and style".format(q["px"]))
    for name, what in (("same_objective", "(a)"), ("defaults_both_terms", "(b)")):
        row = (q or {}).get(name)
        if not row:
            continue
        head = f"time to quality {what}".ljust(40)
        if row["ratio"] is not None:
            lines.append(f"{head} {q['reference_seconds']:8.1f}s {row['seconds_to_reach']:8.1f}s   {row['ratio']:6.3f}x"
                         f"  {'<= 0.15x' if name == 'defaults_both_terms' else '        '}"
                         f"   (step {row['steps_to_reach']} against the classic loop's {q['reference_steps']})")
        else:
            lines.append(f"{head} {q['reference_seconds']:8.1f}s   not reached in {row['steps_run']} steps "
                         f"({row['seconds_total']:.0f}s)")
    if q and "reference_judged" in q:
        r, d = q["reference_judged"], q["defaults_both_terms"]["at_last_step"]
        lines.append(f"    judged content / style: classic loop after {q['reference_steps']} steps "
                     f"{r['content']:.3f} / {r['style']:.3f}; defaults after {q['defaults_both_terms']['steps_run']} "
                     f"{d['content']:.3f} / {d['style']:.3f}")
    st = results.get("startup")
    if st:
        lines.append(f"start-up, 1 step at 64 px, fresh process  {st['reference_s']:8.2f}s {st['helpers_s']:8.2f}s   "
                     f"{st['ratio']:6.2f}x  helpers <= 2.5s"
                     + (f"   (first run on a new machine: {st['helpers_cold_s']:.2f}s)" if "helpers_cold_s" in st else ""))
    w = results.get("time_to_quality_whole_process") or {}
    for name, what in (("same_objective", "(a)"), ("defaults_both_terms", "(b)")):
        if name in w:
            lines.append(f"time to quality {what}, whole process".ljust(40)
                         + f" {w['reference_s']:8.1f}s {w[name]['helpers_s']:8.1f}s   {w[name]['ratio']:6.3f}x"
                         + ("  <= 0.15x" if name == "defaults_both_terms" else "          ") + "   (start-up included)")
    for row in results.get("peak_memory", []):
        if "ratio" in row:
            lines.append(f"peak memory at {row['px']:>4} px ({row['measure']})"[:40].ljust(40)
                         + f" {row['reference_mib']:8.0f}MiB {row['helpers_mib']:8.0f}MiB  {row['ratio']:6.2f}x"
                         + (f"   (the run itself: {row['reference_run_mib']:.0f} vs {row['helpers_run_mib']:.0f} MiB)"
                            if "helpers_run_mib" in row else ""))
        else:
            lines.append(f"peak memory at {row['px']} px: failed ({row['reference'].get('error') or row['helpers'].get('error')})")
    rows = results.get("memory_estimate", [])
    if rows:
        lines.append("")
        lines.append("memory estimate (helpers.memory) against the measured peak; target within ±25%")
        lines.append("   px  precision  optimizer  steps   estimate   measured   estimate/measured")
    for row in rows:
        head = f"{row['px']:>5}  {row['precision']:<9}  {row['optimizer']:<9}  {row['steps']:>5}  "
        if "ratio" in row:
            lines.append(head + f"{row['estimate_bytes'] / 2 ** 20:7.0f}MiB {row['measured_bytes'] / 2 ** 20:7.0f}MiB"
                         f"   {row['ratio']:6.2f}" + ("" if 0.75 <= row["ratio"] <= 1.25 else "   (outside ±25%)"))
        else:
            lines.append(head + f"failed ({row.get('error')})")
    if rows:
        lines.append("")
    p = results.get("previews")
    if p:
        lines.append(f"previews every 10 steps at {p['px']} px        {p['plain_s_per_step']:8.3f}s "
                     f"{p['preview_s_per_step']:8.3f}s   {p['ratio']:6.3f}x  <= 1.05x"
                     f"   (callback itself: {100 * p['callback_share_of_loop']:.2g}% of the loop)")
    b = results.get("bf16_vs_float32")
    if b and "skipped" not in b:
        lines.append(f"bfloat16 vs float32, {b['px']} px, {b['steps']} steps: float32 loss "
                     f"{b['helpers_loss_float32_run']:.4f} vs {b['helpers_loss_bfloat16_run']:.4f} "
                     f"({100 * b['relative_loss_difference']:+.1f}%), pixels differ by "
                     f"{b['pixel_mean_abs_diff_0_255']:.2f}/255 on average, PSNR {b['pixel_psnr_db']:.1f} dB"
                     + (f" (two float32 runs whose starts differ by ±0.5/255: "
                        f"{b['float32_vs_nudged_pixel_mean_abs_diff_0_255']:.2f}/255)"
                        if "float32_vs_nudged_pixel_mean_abs_diff_0_255" in b else ""))
    g = results.get("gpu")
    if g:
        for row in g["steps"]:
            if "error" in row:
                lines.append(f"GPU s/step at {row['px']} px: {row['error']}")
            else:
                others = ", ".join(f"{name.removeprefix('helpers_').replace('_', ' ')} "
                                   f"{1000 * row[name + '_s_per_step']:.2f}ms"
                                   for name in variants_for(torch.device("cuda"))
                                   if name + "_s_per_step" in row)
                lines.append(f"GPU s/step at {row['px']:>4} px                   {1000 * row['reference_s_per_step']:8.2f}ms "
                             f"{1000 * row['helpers_s_per_step']:8.2f}ms  {row['ratio']:6.2f}x"
                             + ("  <= 2 ms" if row["px"] == 512 else "        ")
                             + (f"   (helpers {others})" if others else ""))
        c = g.get("graph_check")
        if c:
            lines.append(f"CUDA graph vs none, {c['px']} px, {c['steps']} steps: first 10 losses differ by at most "
                         f"{100 * c['max_relative_difference_first_10_steps']:.2g}%, final loss by "
                         f"{100 * c['final_relative_difference']:+.2g}%")
        for kind, fit in g["largest_fitting"].items():
            lines.append(f"GPU largest size in {g['limit_gib']} GiB (a T4), {kind}: "
                         + (f"{fit['px']} px ({fit['max_allocated_gib']:.1f} GiB)" if fit else "none tried fit"))
    return "\n".join(lines)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    groups = [("", results.get("seconds_per_step", []))]
    if results.get("gpu"):
        groups.append(("GPU ", [r for r in results["gpu"]["steps"] if "error" not in r]))
    if not any(rows for _, rows in groups):  # nothing timed (e.g. --only estimate in a new folder)
        plt.close(fig)
        return
    for prefix, rows in groups:
        pixels = [r["hw"][0] * r["hw"][1] for r in rows]
        ax.plot(pixels, [r["reference_s_per_step"] for r in rows], "o--", label=prefix + "reference (classic loop)")
        ax.plot(pixels, [r["helpers_s_per_step"] for r in rows], "o-", label=prefix + "helpers (defaults)")
        if rows and "helpers_float32_s_per_step" in rows[0]:
            ax.plot(pixels, [r["helpers_float32_s_per_step"] for r in rows], "o:", label=prefix + "helpers, float32")
        for p, r in zip(pixels, rows):
            ax.annotate(f"{r['px']} px", (p, r["reference_s_per_step"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.margins(x=0.12, y=0.12)
    ax.set_xlabel("pixels per image (H × W)")
    ax.set_ylabel("seconds per Adam step")
    ax.set_title(f"Style transfer step time: {results['machine_slug']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None, config=None):
    """The command line; `config` replaces the FULL/QUICK settings (the smoke test's tiny ones)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few steps: a smoke run")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice). On a CPU shared with other "
                             "jobs, 1 thread is several times faster than 2 waiting for each other")
    parser.add_argument("--out", default=None, help="folder for the results (default benchmarks/results, "
                        "or a temporary folder with --quick)")
    parser.add_argument("--only", default=None,
                        help="comma-separated sections to (re)run, merged into an existing results file: "
                             + ",".join(SECTIONS))
    parser.add_argument("--probe", choices=("reference", "helpers"), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--optimizer", default="adam", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe:
        probe_memory(args.probe, args.size, args.steps, args.device, args.precision, args.optimizer)
        return 0

    cfg = config or (QUICK if args.quick else FULL)
    device = helpers.pick_device(args.device)
    machine, slug = describe_machine(device)
    out = Path(args.out) if args.out else (Path(tempfile.gettempdir()) / "nst-benchmark-quick" if args.quick
                                           else ROOT / "benchmarks" / "results")
    out.mkdir(parents=True, exist_ok=True)
    model = helpers.load_vgg19("caffe", device=device)  # float32, standard layout: the reference's network
    results = {"machine_slug": slug, "machine": machine, "quick": args.quick,
               "command": " ".join(["python benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
               "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "images": [CONTENT, STYLE],
               "load_average_start": [round(x, 2) for x in os.getloadavg()],
               # $NST_PRECISION replaces "auto" in every helpers run (auto_precision below is then
               # only what "auto" would have picked)
               "NST_PRECISION": os.environ.get(speed.PRECISION_ENV) or None}
    start = time.perf_counter()

    json_path, png_path = out / f"{slug}.json", out / f"{slug}.png"

    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section {sorted(unknown)[0]!r}: choose from {', '.join(SECTIONS)}")
    mine = set()

    def save():  # with --only, merge into what is there (other sections, maybe written meanwhile)
        merged = json.loads(json_path.read_text(encoding="utf-8")) if args.only and json_path.is_file() else {}
        merged.update({k: v for k, v in results.items() if k in mine or k not in merged})
        json_path.write_text(json.dumps(merged, indent=1) + "\n", encoding="utf-8")
        return merged

    def say(text):  # progress, and the results so far, so that a long run never loses them
        save()
        print(f"[{time.perf_counter() - start:7.1f}s] {text}", flush=True)

    say(f"{slug}: {', '.join(s for s in SECTIONS if s in only)}")
    mine.update(("load_average_start", "date", "command", "auto_precision"))
    defaults = StyleTransferConfig()
    results["auto_precision"] = auto_precision(device, cached_vgg19(defaults.weights, defaults.pooling, device,
                                                                    defaults.normalized_network))
    say(f"  precision auto: {results['auto_precision']['choice']} "
        f"(measured: {results['auto_precision']['measured_seconds_per_pass']})")
    if "steps" in only:
        mine.add("seconds_per_step")
        results["seconds_per_step"] = []
    for px in (cfg["step_sizes"] if "steps" in only else []):
        block = 10 if device.type == "cuda" else 1  # a GPU is timed with a sync around each block
        results["seconds_per_step"].append(steps_interleaved(px, cfg["step_rounds"][px], block, device, model,
                                                             variants_for(device)))
        say(f"  {px} px: ratio {results['seconds_per_step'][-1]['ratio']:.2f}")
    if "quality" in only:
        say("time to quality")
        mine.add("time_to_quality")
        results["time_to_quality"] = time_to_quality(cfg, device, model)
        q = results["time_to_quality"]
        say(f"  (a) same objective: {q['same_objective']['ratio']}, (b) defaults: {q['defaults_both_terms']['ratio']}")
    if "startup" in only:
        say("start-up")
        mine.add("startup")
        results["startup"] = startup(cfg, device)
        say(f"  helpers {results['startup']['helpers_s']:.2f}s, classic loop {results['startup']['reference_s']:.2f}s")
    if results.get("startup") and results.get("time_to_quality"):
        mine.add("time_to_quality_whole_process")
        results["time_to_quality_whole_process"] = whole_process_time_to_quality(results["time_to_quality"],
                                                                                 results["startup"])
    if "bf16" in only:
        say("bfloat16 against float32")
        mine.add("bf16_vs_float32")
        results["bf16_vs_float32"] = bf16_vs_float32(cfg["quality_px"], device, cfg["bf16_steps"],
                                                     picture=out / f"{slug}-bf16-vs-float32.png")
    if "previews" in only:
        say("previews")
        mine.add("previews")
        results["previews"] = preview_overhead(cfg, device)
    if "memory" in only:
        say("peak memory")
        mine.add("peak_memory")
        results["peak_memory"] = peak_memory(cfg, device)
    if "estimate" in only:
        say("memory estimate against measured peaks")
        mine.add("memory_estimate")
        results["memory_estimate"] = estimate_vs_measured(cfg, device)
    if device.type == "cuda" and "gpu" in only:
        say("GPU figures")
        mine.add("gpu")
        graph_check = cuda_graph_check(cfg["gpu_sizes"][0], 100, device)
        say(f"  CUDA graph check: {graph_check}")
        results["gpu"] = gpu_figures(cfg, device, model)  # last: its probes run out of memory on purpose
        results["gpu"]["graph_check"] = graph_check
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds_total"] = time.perf_counter() - start
    mine.update(("load_average_end", "seconds_total"))
    results = save()
    report = table(results)
    print(report)
    results["table"] = report
    json_path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    plot(results, png_path)
    print(f"wrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
