"""Memory (helpers.memory): the estimate's arithmetic, the refusal before a run (with the free
memory injected), a real allocation failure under a memory limit in a subprocess, and the best
image kept when memory runs out mid-run (engine, coarse to fine, the studio, the command line)."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import StyleTransfer, StyleTransferConfig, StyleTransferError, memory
from helpers.cli import main
from helpers.multiscale import stylize_multiscale

ROOT = Path(__file__).resolve().parents[1]
CITY = str(ROOT / "images/content/city.jpg")  # 751×563
STARRY = str(ROOT / "images/style/starry_night.jpg")
F32 = StyleTransferConfig(precision="float32", weights="random")
MB = 1e6
OOM_TEXT = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 38382080000 bytes. Error code 12"


def tiny(seed, h=40, w=48):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


# --- the arithmetic ---------------------------------------------------------------------------

def test_activations_follow_the_layer_shapes():
    """float32, the paper's layers (to relu5_1) and max pooling, at 256×256, by hand."""
    hw = 256 * 256
    convs = 2 * 64 * hw + 2 * 128 * hw / 4 + 4 * 256 * hw / 16 + 4 * 512 * hw / 64 + 512 * hw / 256
    pools = 64 * hw / 4 + 128 * hw / 16 + 256 * hw / 64 + 512 * hw / 256
    content_difference = 512 * hw / 64  # relu4_2 - its target, kept by the square
    expected = 4 * (3 * hw + convs + content_difference) + (4 + 8) * pools  # int64 max-pool indices
    estimate = memory.estimate_run(F32, (256, 256))
    assert estimate.parts["activations"] == pytest.approx(expected)
    assert estimate.total == sum(estimate.parts.values())


def test_estimate_grows_with_pixels_and_depends_on_precision_layers_and_optimizer():
    small, large = memory.estimate_run(F32, (256, 256)), memory.estimate_run(F32, (512, 512))
    per_pixel = {k: large.parts[k] / small.parts[k] for k in ("activations", "backward", "images", "optimizer")}
    assert all(r == pytest.approx(4, rel=0.02) for r in per_pixel.values()), per_pixel
    bf16 = memory.estimate_run(F32, (512, 512), precision=torch.bfloat16)
    # bfloat16 halves the activations, but the Gram matrix keeps float32 copies of the style layers
    assert 0.5 * large.parts["activations"] < bf16.parts["activations"] < large.parts["activations"]
    assert bf16.parts["network"] == 1.5 * large.parts["network"]  # the low-precision copy of the weights
    shallow = memory.estimate_run(F32.replace(content_weight=0, style_layers=("relu1_1",)), (512, 512))
    assert shallow.parts["activations"] < 0.2 * large.parts["activations"]
    lbfgs = [memory.estimate_run(F32.replace(optimizer="lbfgs"), (512, 512), steps=n).parts["optimizer"]
             for n in (1, 11, 51, 500)]
    image = 3 * 512 * 512 * 4
    assert lbfgs[1] - lbfgs[0] == 20 * image  # one (s, y) pair a step after the first ...
    assert lbfgs[2] == lbfgs[3] == lbfgs[0] + 100 * image  # ... up to the history size, 50
    assert memory.estimate_run(F32, (512, 512), network=False).total == large.total - large.parts["network"]


def test_a_gpu_with_cuda_graphs_wants_a_second_copy_of_the_step_but_does_not_need_it():
    cuda = torch.device("cuda")  # a device name only: nothing runs there
    graph = memory.estimate_run(F32, (512, 512), device=cuda)
    plain = memory.estimate_run(F32.replace(cuda_graphs=False), (512, 512), device=cuda)
    assert graph.optional["cuda graph copy"] == plain.parts["activations"] + plain.parts["backward"]
    assert graph.total == plain.total and "more if free" in graph.describe()
    assert not memory.estimate_run(F32.replace(optimizer="lbfgs"), (512, 512), device=cuda).optional
    assert "runtime" not in plain.parts  # the CPU's runtime overhead is not GPU memory


def _saved_for_backward(engine):
    """Bytes of the distinct tensors autograd keeps during one forward pass of `engine`, the
    network's weights left out (the estimate counts them once, as "network")."""
    from helpers.speed import _LOW_PRECISION

    models = [engine.model, *_LOW_PRECISION.get(engine.model, {}).values()]
    weights = {t.untyped_storage().data_ptr() for m in models for t in [*m.parameters(), *m.buffers()]}
    storages = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in weights:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        engine.losses(engine.image)
    return sum(storages.values())


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_the_activation_estimate_matches_what_autograd_keeps(precision):
    """Counted on the real engine with autograd's own hooks: within ±15%."""
    if precision == "bfloat16" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("no bfloat16 on this CPU")
    engine = StyleTransfer(tiny(1, 96, 128), tiny(2, 96, 128), F32, precision=precision, size_px=128, steps=1)
    saved = _saved_for_backward(engine)
    estimate = memory.estimate_run(engine.config, (96, 128), precision=engine.autocast_dtype)
    assert estimate.parts["activations"] == pytest.approx(saved, rel=0.15)


# --- image shapes without loading -------------------------------------------------------------

def test_planned_shape_reads_headers_arrays_and_exif_rotation(tmp_path):
    assert memory.planned_shape(CITY, 256) == (192, 256)
    assert memory.planned_shape(CITY, 20000) == (14993, 20000)
    assert memory.planned_shape(tiny(0, 40, 80), 160) == (80, 160)
    assert memory.planned_shape(np.zeros((30, 60, 3), np.uint8), 120) == (60, 120)
    rotated = tmp_path / "portrait.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    Image.new("RGB", (200, 100)).save(rotated, exif=exif)
    assert memory.planned_shape(rotated, 100) == (100, 50)
    assert memory.planned_shape(rotated.read_bytes(), 100) == (100, 50)
    assert memory.planned_shape(tmp_path / "missing.jpg", 100) is None  # load_image will say so


# --- the free memory --------------------------------------------------------------------------

def test_free_memory_is_the_smallest_of_ram_process_limit_and_cgroup(monkeypatch):
    monkeypatch.setattr(memory, "_meminfo_available", lambda: 20 * 2 ** 30)
    monkeypatch.setattr(memory, "_cgroup_left", lambda: None)
    monkeypatch.setattr(memory, "_rlimit_left", lambda: None)
    assert memory.available_bytes("cpu") == 20 * 2 ** 30
    monkeypatch.setattr(memory, "_cgroup_left", lambda: 6 * 2 ** 30)
    assert memory.available_bytes("cpu") == 6 * 2 ** 30
    monkeypatch.setattr(memory, "_rlimit_left", lambda: 2 * 2 ** 30)
    assert memory.available_bytes("cpu") == 2 * 2 ** 30


def test_the_process_limit_counts_what_the_process_already_uses(monkeypatch):
    used = memory._status_bytes("VmSize")
    monkeypatch.setattr(memory.resource, "getrlimit", lambda which: (used + 10 ** 9, -1))
    assert memory._rlimit_left() == pytest.approx(10 ** 9, abs=64 * 2 ** 20)


# --- the refusal before a run -----------------------------------------------------------------

def test_a_size_that_cannot_fit_is_refused_in_one_line_with_the_largest_that_does():
    config = StyleTransferConfig(size_px=20000, precision="float32")
    available = 16 * 10 ** 9
    with pytest.raises(memory.NotEnoughMemory) as caught:
        memory.check_fits(config, CITY, STARRY, device="cpu", precision="float32", available=available)
    err = caught.value
    assert "\n" not in str(err)
    assert re.fullmatch(r"size 20000 px needs about [\d,]+ GB of memory and this machine has 16\.0 GB free: "
                        r"try size \d+ px or less", str(err)), str(err)
    assert err.needed_bytes > 20 * available
    n = err.largest_size_px
    assert n % 32 == 0 and 1000 < n < 20000
    fits = memory.estimate_for(config, CITY, STARRY, device="cpu", precision="float32", size_px=n).total
    too_big = memory.estimate_for(config, CITY, STARRY, device="cpu", precision="float32", size_px=n + 32).total
    assert fits <= memory.HEADROOM * available < too_big
    assert f"--size {n}" in err.message("--size")
    # what fits passes and returns its estimate
    assert memory.check_fits(config.replace(size_px=n), CITY, STARRY, device="cpu", precision="float32",
                              available=available).total == fits


def test_nothing_fits_in_almost_no_memory():
    with pytest.raises(memory.NotEnoughMemory, match="free some memory"):
        memory.check_fits(F32, CITY, STARRY, device="cpu", precision="float32", available=10 * MB)
    assert memory.largest_size(F32, CITY, STARRY, device="cpu", precision="float32", available=10 * MB) is None


def test_the_memory_check_takes_the_precision_and_never_decides_it(monkeypatch):
    from helpers import speed

    def decided(*args, **kwargs):
        raise AssertionError("helpers.memory decided the precision itself")

    monkeypatch.setattr(speed, "pick_precision", decided)
    monkeypatch.setattr(speed, "run_precision", decided)
    config = StyleTransferConfig(size_px=512, precision="auto")
    low = memory.check_fits(config, CITY, STARRY, device="cpu", precision=torch.bfloat16, available=10 ** 12)
    full = memory.check_fits(config, CITY, STARRY, device="cpu", precision=None, available=10 ** 12)
    assert (low.precision, full.precision) == ("bfloat16", "float32") and low.total < full.total
    assert memory.largest_size(config, CITY, STARRY, device="cpu", precision=torch.bfloat16, available=10 ** 9)


def test_the_engine_refuses_before_loading_any_image(monkeypatch):
    """The network (80 MB) is loaded first, since "auto" precision is measured with it; the
    images and everything that grows with the size come after the check."""
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 300 * MB)
    import helpers.optimization as optimization

    def no_loading(*args, **kwargs):
        raise AssertionError("an image was loaded before the memory check")

    monkeypatch.setattr(optimization, "load_image", no_loading)
    with pytest.raises(StyleTransferError, match="needs about"):
        StyleTransfer(CITY, STARRY, F32, size_px=2048)
    monkeypatch.setenv(memory.SKIP_CHECK_ENV, "1")  # the tests' way past the check
    with pytest.raises(AssertionError, match="loaded"):
        StyleTransfer(CITY, STARRY, F32, size_px=2048)


def test_coarse_to_fine_refuses_its_largest_size_before_the_small_ones(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 400 * MB)
    started = []
    monkeypatch.setattr(StyleTransfer, "run", lambda self, **kw: started.append(self))
    with pytest.raises(memory.NotEnoughMemory, match="size 4096 px"):
        stylize_multiscale(tiny(1), tiny(2), (64, 4096), F32, steps=1)
    assert not started


def test_cli_refuses_size_20000_in_one_line_and_writes_nothing(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop(memory.SKIP_CHECK_ENV, None)
    done = subprocess.run([sys.executable, "-m", "helpers", "--size", "20000", "--steps", "1", "--frames", "frames"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert re.match(r"error: --size 20000 needs about [\d,]+ GB of memory and this machine has [\d.,]+ GB free: "
                    r"try --size \d+$", done.stderr.strip()), done.stderr
    assert list(tmp_path.iterdir()) == []  # no picture, no frames folder


def test_the_refusal_comes_before_the_images_are_loaded(monkeypatch, capsys, tmp_path):
    """"Within seconds" without a timed test: no image is loaded, no step run, before the refusal."""
    from helpers import cli, optimization

    def loaded(*args, **kwargs):
        raise AssertionError("loaded something before refusing")

    monkeypatch.delenv(memory.SKIP_CHECK_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(optimization, "load_image", loaded)
    assert cli.main(["--size", "20000", "--steps", "1"]) == 2
    assert "needs about" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


def test_coarse_to_fine_on_the_command_line_is_refused_by_its_first_engine_and_writes_nothing(
        monkeypatch, capsys, tmp_path):
    """The engine owns the check: the command line's only refusal comes from the first size's
    engine, made for the largest size, and the --frames folder is not made before it."""
    from helpers import cli, optimization

    def loaded(*args, **kwargs):
        raise AssertionError("loaded something before refusing")

    monkeypatch.delenv(memory.SKIP_CHECK_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(optimization, "load_image", loaded)
    assert cli.main(["--sizes", "64,20000", "--steps", "1", "--frames", "frames"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "size 20000 px needs about" in err, err
    assert list(tmp_path.iterdir()) == []


def test_out_of_memory_while_the_engine_is_built_is_one_line(monkeypatch, capsys, tmp_path):
    """Out of memory before the first step (computing the targets, say): status 2, one line."""
    from helpers import cli, optimization

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 38382080000 bytes")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(optimization.StyleTransfer, "__init__", out_of_memory)
    assert cli.main(["--size", "64", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Nothing was written" in err
    assert list(tmp_path.iterdir()) == []


# --- a real allocation failure under a memory limit -------------------------------------------

DRIVER = textwrap.dedent("""
    import re, resource, sys
    import torch, helpers.cli  # imported first: a CUDA build of torch reserves gigabytes of address space
    used = int(re.search(r"VmSize:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
    limit = used + int(float(sys.argv[1]) * 1e6)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    sys.exit(helpers.cli.main(sys.argv[2:]))
""")


def _limited_cli(tmp_path, headroom_mb, *args, skip_check=False):
    (tmp_path / "driver.py").write_text(DRIVER)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop(memory.SKIP_CHECK_ENV, None)
    if skip_check:
        env[memory.SKIP_CHECK_ENV] = "1"
    return subprocess.run([sys.executable, "driver.py", str(headroom_mb), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_process_memory_limit_is_respected_before_the_run(tmp_path):
    done = _limited_cli(tmp_path, 800, "--size", "1024", "--steps", "1", "--weights", "random", "-q", "-o", "out.png")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert re.match(r"error: --size 1024 needs about [\d.]+ GB of memory and this machine has [5-8]\d\d MB free: "
                    r"try --size \d+$", done.stderr.strip()), done.stderr
    assert not (tmp_path / "out.png").exists()


def test_a_real_allocation_failure_is_one_line_and_status_2(tmp_path):
    """Past the check (NST_SKIP_MEMORY_CHECK=1), the first step really runs out of memory."""
    done = _limited_cli(tmp_path, 800, "--size", "1024", "--steps", "1", "--weights", "random", "-q",
                        "-o", "out.png", skip_check=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: out of memory") and "Nothing was written" in done.stderr, done.stderr
    assert "try a smaller size" in done.stderr
    assert not (tmp_path / "out.png").exists()


# --- running out mid-run ----------------------------------------------------------------------

def _fail_at(engine, step, error=None):
    """Make `engine` run out of memory in its step number `step` (1-based)."""
    real = engine._one_step

    def one_step():
        if engine.step + 1 >= step:
            raise error or RuntimeError(OOM_TEXT)
        return real()

    engine._one_step = one_step


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_running_out_mid_run_keeps_the_best_image(optimizer):
    engine = StyleTransfer(tiny(1), tiny(2), F32, optimizer=optimizer, size_px=48, steps=10, report_every=2,
                           learning_rate=1.0 if optimizer == "lbfgs" else 0.02)
    _fail_at(engine, 6)
    result = engine.run()
    assert memory.ran_out_of_memory(result.stopped)
    assert result.stopped.startswith("out of memory at step 6 at size 48 px (it asked for 38.4 GB more): "
                                     "try a smaller size"), result.stopped
    assert result.steps_done == 5 and [row["step"] for row in result.history] == [1, 2, 3, 4, 5]
    assert torch.equal(result.image, engine.best_image.clamp(0, 1))
    assert not torch.equal(result.image, tiny(1))  # the optimized picture, not the photo
    engine._one_step = type(engine)._one_step.__get__(engine)
    assert engine.run(2).stopped is None  # the engine is still usable


@pytest.mark.parametrize("error", [MemoryError(), torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")])
def test_memory_error_and_cuda_out_of_memory_are_states_too(error):
    engine = StyleTransfer(tiny(1), tiny(2), F32, size_px=48, steps=4)
    _fail_at(engine, 2, error)
    result = engine.run()
    assert memory.ran_out_of_memory(result.stopped) and result.steps_done == 1
    if isinstance(error, torch.cuda.OutOfMemoryError):
        assert result.stopped.startswith("out of GPU memory at step 2") and "2.00 GiB" in result.stopped


def test_other_runtime_errors_are_not_mistaken_for_memory():
    engine = StyleTransfer(tiny(1), tiny(2), F32, size_px=48, steps=4)
    _fail_at(engine, 2, RuntimeError("shapes do not match"))
    with pytest.raises(RuntimeError, match="shapes"):
        engine.run()
    assert not memory.is_out_of_memory(ValueError("out of memory"))


def test_coarse_to_fine_keeps_the_last_size_that_fitted(monkeypatch):
    real_run = StyleTransfer.run

    def run(self, steps=None, callback=None, stop=None):
        if self.config.size_px == 96:
            _fail_at(self, 1)
        return real_run(self, steps, callback, stop)

    monkeypatch.setattr(StyleTransfer, "run", run)
    result = stylize_multiscale(tiny(1), tiny(2), (48, 96), F32, steps=3)
    assert memory.ran_out_of_memory(result.stopped) and "size 96 px" in result.stopped
    assert result.steps_done == 3 and [s["size_px"] for s in result.extra["scales"]] == [48, 96]
    assert result.image.shape[-1] == 96  # the 48 px result, upsampled: the best image of size 96


def test_cli_saves_the_best_image_when_memory_runs_out_mid_run(tmp_path, monkeypatch, capsys):
    real_run = StyleTransfer.run

    def run(self, steps=None, callback=None, stop=None):
        _fail_at(self, 3)
        return real_run(self, steps, callback, stop)

    monkeypatch.setattr(StyleTransfer, "run", run)
    out = tmp_path / "out.png"
    status = main([CITY, STARRY, "--size", "48", "--steps", "5", "--weights", "random", "-q", "-o", str(out)])
    err = capsys.readouterr().err
    assert status == 1 and out.exists()
    assert err.count("\n") == 1 and err.startswith("error: out of memory at step 3 at size 48 px"), err
    assert f"Saved the best image so far to {out}" in err


def test_studio_says_what_ran_out_and_runs_again_at_a_smaller_size(monkeypatch):
    from helpers.studio import StudioSession

    failing = {"on": True}
    real_run = StyleTransfer.run

    def run(self, steps=None, callback=None, stop=None):
        if failing["on"]:
            _fail_at(self, 2)
        return real_run(self, steps, callback, stop)

    monkeypatch.setattr(StyleTransfer, "run", run)
    session = StudioSession(tiny(1), tiny(2), {"size_px": 64, "steps": 4}, base_config=F32, update_every_s=0.0)
    session.start(background=False)
    assert session.state == "failed" and "out of memory" in session.message
    assert "lower the image size" in session.message and session.image is not None
    failing["on"] = False
    session.set(size_px=48)
    session.start(background=False)
    assert session.state == "finished", session.message
    assert session.image.shape[-1] == 48


def test_studio_refuses_a_size_that_cannot_fit_and_caps_its_slider(monkeypatch):
    pytest.importorskip("ipywidgets")
    from helpers.studio import Studio, StudioSession

    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 600 * MB)
    session = StudioSession(tiny(1), tiny(2), {"size_px": 2048, "steps": 2}, base_config=F32, update_every_s=0.0)
    session.start(background=False)
    assert session.state == "failed" and "needs about" in session.message and "try size" in session.message
    fits = session.largest_size_px()
    assert fits is not None and 64 <= fits < 2048
    studio = Studio(size_px=1024, steps=10, max_size_px=4096, base_config=F32)
    slider = studio.sliders["size_px"]
    fits = studio.session.largest_size_px()  # for the bundled city photo and The Starry Night
    assert slider.max <= fits < slider.max + 32 and slider.value == slider.max
    assert studio.session.settings["size_px"] == slider.value


def test_notebooks_fit_their_sizes_to_the_memory_they_got(monkeypatch, capsys):
    from helpers.notebook import NotebookRun

    run = NotebookRun(name="06", quick=False, device=torch.device("cpu"))
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 2 * 10 ** 9)
    fits = run.fit_size(4096)
    assert fits % 32 == 0 and 256 < fits < 4096
    assert "4096 px would not fit" in capsys.readouterr().out
    assert run.fit_size(256) == 256
    expected = [512, 1024, fits] if fits > 1024 else [512, fits]
    assert run.fit_sizes((512, 1024, 4096)) == expected
    assert run.fit_sizes((128, 256)) == [128, 256]
