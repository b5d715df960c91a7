"""Issue 22's measurements: short CPU trainings of the real-time network judged on the held-out
photos (images/content: city, cat, astronaut) at 256 px by the optimization's own loss terms
(`StyleTransfer.losses`, the command line's defaults: style weight 30), beside the optimization
itself (defaults, 300 Adam steps).

    python notes/issue22_runs.py baseline
    python notes/issue22_runs.py train NAME '{"style_weight": 30}' --steps 600 --track-every 100 [--warmup 200]
    python notes/issue22_runs.py model NAME images/models/starry_night.pt   # a model file, and its speed
    python notes/issue22_runs.py bundle OUT.pt RUN [RUN ...]   # the bundled network + runs as stages
    python notes/issue22_runs.py large RUN_OR_MODEL [...]    # judged at 512 px (the size notebook 07 shows)

`train --init` takes an earlier run's NAME or a model file (e.g. images/models/starry_night.pt: a
fine-tune of the bundled network). Trainings run wherever `"device"` in the settings says (a GPU:
'{"device": "cuda", "precision": "auto"}'); the judges always run on the CPU in float32.

Results are appended to notes/issue22/results.jsonl; pictures go to notes/issue22/NAME.jpg
(held-out photos side by side: stylized above, the photo below).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers import StyleTransfer, bundled_images, stylize  # noqa: E402
from helpers.config import TrainingConfig  # noqa: E402
from helpers.images import images_dir  # noqa: E402
from helpers.realtime import Trainer, TransformNet, photo_files  # noqa: E402

OUT = ROOT / "notes/issue22"
EVAL_PX = 256
HELD_OUT = ("city", "cat", "astronaut")


def judges(px=EVAL_PX):
    painting = bundled_images("style")["starry_night"]
    content = bundled_images("content")
    return {name: StyleTransfer(content[name], painting, size_px=px, precision="float32", device="cpu")
            for name in HELD_OUT}


def run_network(name):
    """The network an earlier run NAME saved (notes/issue22/NAME.state.pt), on the CPU."""
    net = TransformNet()
    net.load_state_dict(torch.load(OUT / f"{name}.state.pt", map_location="cpu"))
    return net


@torch.no_grad()
def one_pass(net, js):
    """The held-out photos stylized by `net` (on its own device), back on the CPU in float32."""
    device = next(net.parameters()).device
    return {name: net(js[name].content.to(device)).float().clamp(0, 1).cpu() for name in js}


@torch.no_grad()
def judge(js, images):
    return {name: {k: round(v.item(), 4) for k, v in js[name].losses(images[name]).items() if k in ("content", "style")}
            for name in js}


def save_strip(images, js, path):
    from PIL import Image
    tiles = []
    for name in js:
        top = images[name][0].clamp(0, 1)
        bottom = js[name].content[0]
        tiles.append(torch.cat([top, bottom], dim=1))
    h = max(t.shape[1] for t in tiles)
    tiles = [torch.nn.functional.pad(t, (0, 4, 0, h - t.shape[1]), value=1.0) for t in tiles]
    strip = torch.cat(tiles, dim=2)
    array = (strip.permute(1, 2, 0) * 255).round().byte().numpy()
    Image.fromarray(array).save(path, quality=90)


def record(row):
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def baseline(args):
    js = judges()
    painting = bundled_images("style")["starry_night"]
    content = bundled_images("content")
    images, seconds = {}, {}
    for name in HELD_OUT:
        start = time.perf_counter()
        images[name] = stylize(content[name], painting, size_px=EVAL_PX, steps=300, precision="float32",
                               device="cpu").image
        seconds[name] = round(time.perf_counter() - start, 1)
    flat = {name: torch.full_like(js[name].content, 0.5) for name in HELD_OUT}
    photo = {name: js[name].content for name in HELD_OUT}
    record({"name": "optimization-300", "seconds": seconds, "held_out": judge(js, images)})
    record({"name": "grey-image", "held_out": judge(js, flat)})
    record({"name": "photo-itself", "held_out": judge(js, photo)})
    save_strip(images, js, OUT / "optimization-300.jpg")


def train(args):
    js = judges()
    painting = bundled_images("style")["starry_night"]
    content = bundled_images("content")
    files = photo_files(args.photos or images_dir() / "photos", exclude=[painting, *content.values()])
    settings = {"precision": "float32", "device": "cpu", "report_every": args.track_every,
                "steps": args.steps, **json.loads(args.settings)}
    config = TrainingConfig(**settings)
    trainer = Trainer(painting, files, config, checkpoint=args.checkpoint)  # resumes from it if it exists
    trainer.checkpoint = None  # written at each track point below, not after every step
    init = args.init
    if init and Path(init).is_file():  # a model file: its network, named as its last stage's run
        from helpers.realtime import load_model
        net, given = load_model(init)
        trainer.net.load_state_dict(net.state_dict())
        init = given["stages"][-1]["run"]
    elif init:  # another run's network (e.g. a content-only warm-up)
        trainer.net.load_state_dict(run_network(init).state_dict())
    style_weight = config.style_weight
    track = []

    def weight_at(step):  # content-only warm-up, then the style ramped in linearly
        if step < args.warmup:
            return 0.0
        return style_weight * min(1.0, (step - args.warmup + 1) / max(1, args.ramp))

    def on_progress():
        trainer.net.eval()
        out = one_pass(trainer.net, js)
        trainer.net.train()
        scores = judge(js, out)
        track.append({"step": trainer.step, "seconds": round(trainer.seconds, 1),
                      "train": {k: round(v, 4) for k, v in trainer.history[-1].items() if k != "step"},
                      "held_out": scores})
        print(json.dumps(track[-1]), flush=True)
        if args.checkpoint:
            trainer.save_checkpoint(args.checkpoint)

    start = time.perf_counter()
    deadline = start + 60 * args.minutes
    while trainer.step < config.steps and time.perf_counter() < deadline:
        if args.warmup:  # the first runs' own warm-up (before TrainingConfig.warmup_steps)
            trainer.config = config.replace(style_weight=weight_at(trainer.step))
        if args.lr_half_at and trainer.step == args.lr_half_at:
            for g in trainer.optimizer.param_groups:
                g["lr"] = config.learning_rate / 2
        trainer.run(steps=1)
        if trainer.step % args.track_every == 0:
            on_progress()
    trainer.net.eval()
    out = one_pass(trainer.net, js)
    final = judge(js, out)
    save_strip(out, js, OUT / f"{args.name}.jpg")
    record({"name": args.name, "settings": settings, "config": config.as_dict(), "photos": len(trainer.data), "warmup": args.warmup,
            "ramp": args.ramp, "lr_half_at": args.lr_half_at, "init": init, "steps": trainer.step,
            "train_seconds": round(time.perf_counter() - start, 1), "held_out": final, "track": track})
    if args.checkpoint:
        trainer.save_checkpoint(args.checkpoint)
    torch.save({k: v.cpu() for k, v in trainer.net.state_dict().items()}, OUT / f"{args.name}.state.pt")


def model(args):
    """A model file judged like the runs (held-out photos at 256 px), its picture strip, and one
    pass timed against the optimization (defaults, 300 steps) on this machine, both at 256 px."""
    from helpers.device import cpu_family_model, cpu_name
    from helpers.realtime import load_model

    js = judges()
    net, settings = load_model(args.path)
    out = one_pass(net, js)
    times = []
    with torch.no_grad():
        for _ in range(5):
            start = time.perf_counter()
            net(js["city"].content)
            times.append(time.perf_counter() - start)
    pass_s = sorted(times)[2]
    start = time.perf_counter()
    stylize(bundled_images("content")["city"], bundled_images("style")["starry_night"], size_px=EVAL_PX, steps=300)
    optimization = time.perf_counter() - start
    save_strip(out, js, OUT / f"{args.name}.jpg")
    record({"name": args.name, "model": str(args.path), "steps": settings.get("steps_done"),
            "train_seconds": settings.get("seconds"), "held_out": judge(js, out),
            "one_pass_s": round(pass_s, 4), "optimization_300_s": round(optimization, 1),
            "speed_up": round(optimization / pass_s), "threads": torch.get_num_threads(),
            "machine": f"{cpu_name()} ({cpu_family_model()})"})


def bundle(args):
    """A model file for the network of the last RUN, trained as further stages of the bundled
    network: its stages (from the model file) and the RUNs' (from results.jsonl) in the settings,
    its held-out track joined with theirs (steps and seconds counted on). Each stage is written
    whole; the top-level settings are the last stage's: what a further stage would continue with."""
    from helpers.realtime import load_model, save_model

    base = ROOT / "images/models/starry_night.pt"
    _, settings = load_model(base)
    track = json.loads(base.with_name("starry_night-track.json").read_text(encoding="utf-8"))
    stages = list(settings["stages"])
    rows = {r["name"]: r for r in map(json.loads, open(OUT / "results.jsonl"))}
    steps, seconds = settings["steps_done"], settings["seconds"]
    for name in args.runs:
        r = rows[name]
        assert r["init"] == stages[-1]["run"], f"{name} starts from {r['init']}, not {stages[-1]['run']}"
        # every setting the run trained with where the row has them ("config"); older rows hold only
        # the settings given, the rest being the first stage's (the defaults of their day)
        given = {k: v for k, v in r.get("config", r["settings"]).items()
                 if k not in ("device", "report_every", "steps", "checkpoint_every")}
        stages.append({"run": name, **given, "steps_done": r["steps"], "seconds": r["train_seconds"]})
        for row in r["track"]:
            track.append({**row, "step": steps + row["step"], "seconds": round(seconds + row["seconds"], 1),
                          "stage": len(stages)})
        track.append({"step": steps + r["steps"], "seconds": round(seconds + r["train_seconds"], 1),
                      "held_out": r["held_out"], "stage": len(stages)})  # the run's end, judged the same way
        steps, seconds = steps + r["steps"], round(seconds + r["train_seconds"], 1)
    def recipe(stage):  # a stage's training settings, without its name and its counts
        return {k: v for k, v in stage.items() if k not in ("run", "steps_done", "seconds")}

    # each stage whole: what a run did not set, it had as the first stage (the defaults of its day)
    stages = [{**recipe(stages[0]), **s} for s in stages]
    top = {**TrainingConfig(**recipe(stages[-1])).as_dict(), "steps": steps, "style": settings["style"], "steps_done": steps,
           "photos": settings["photos"], "seconds": seconds, "stages": stages}
    net = run_network(args.runs[-1])
    out = Path(args.out)
    save_model(net.eval(), out, json.loads(json.dumps(top)), overwrite=True)  # lists, as the file stores them
    out.with_name(out.stem + "-track.json").write_text(json.dumps(track, indent=1) + "\n", encoding="utf-8")
    print(f"{out}: {len(stages)} stages, {steps:,} steps, {seconds / 60:.0f} min")


def large(args):
    """Networks judged at 512 px, the size notebook 07 shows and times: a network trained on
    256 px photos can look fine there and still break at twice the size. Each RUN's network (its
    state file) or model file; strips go to NAME-512.jpg."""
    from helpers.realtime import load_model

    js = judges(512)
    for name in args.runs:
        if Path(name).is_file():  # a model file: named after its last stage's run
            net, settings = load_model(name)
            name = "bundled-" + settings["stages"][-1]["run"].split("-")[0] if "stages" in settings else Path(name).stem
        else:
            net = run_network(name)
        out = one_pass(net.eval(), js)
        save_strip(out, js, OUT / f"{name}-512.jpg")
        record({"name": f"{name} at 512 px", "px": 512, "held_out_512": judge(js, out)})


def table(args):
    """The results as a markdown table: held-out content / style per photo, and their ratio to
    the optimization's (the issue's targets: content <= 1.25x, style <= 3x)."""
    rows = [json.loads(line) for line in open(OUT / "results.jsonl")]
    opt = next(r for r in rows if r["name"] == "optimization-300")["held_out"]
    print("| run | steps | s | " + " | ".join(f"{n} content / style" for n in HELD_OUT) + " | content / style vs opt. (mean) |")
    print("|---" * (4 + len(HELD_OUT)) + "|")
    for r in rows:
        if "held_out" not in r:  # judged at another size (`large`)
            continue
        h = r["held_out"]
        cells = " | ".join(f"{h[n]['content']:.2f} / {h[n]['style']:.2f}" for n in HELD_OUT)
        rc = sum(h[n]["content"] / opt[n]["content"] for n in HELD_OUT) / len(HELD_OUT)
        rs = sum(h[n]["style"] / opt[n]["style"] for n in HELD_OUT) / len(HELD_OUT)
        print(f"| {r['name']} | {r.get('steps', 300 if 'seconds' in r else '')} | "
              f"{r.get('train_seconds', sum(r.get('seconds', {}).values()) or '')} | {cells} | {rc:.2f}x / {rs:.1f}x |")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("baseline")
    sub.add_parser("table")
    b = sub.add_parser("bundle")
    b.add_argument("out")
    b.add_argument("runs", nargs="+")
    g = sub.add_parser("large")
    g.add_argument("runs", nargs="+")
    m = sub.add_parser("model")
    m.add_argument("name")
    m.add_argument("path")
    t = sub.add_parser("train")
    t.add_argument("name")
    t.add_argument("settings", default="{}", nargs="?")
    t.add_argument("--steps", type=int, default=600)
    t.add_argument("--minutes", type=float, default=18)
    t.add_argument("--track-every", type=int, default=100)
    t.add_argument("--warmup", type=int, default=0)
    t.add_argument("--ramp", type=int, default=1)
    t.add_argument("--lr-half-at", type=int, default=0)
    t.add_argument("--photos")
    t.add_argument("--checkpoint", help="a training checkpoint (the command line's format): resumed from if it "
                   "exists, written at each track point and at the end")
    t.add_argument("--init", help="NAME of an earlier run whose network this one starts from")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", 1)))  # 1: two runs side by side on 2 cores
    {"baseline": baseline, "train": train, "table": table, "model": model, "bundle": bundle,
     "large": large}[args.command](args)


if __name__ == "__main__":
    main()
