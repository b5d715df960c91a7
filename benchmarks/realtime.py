"""The real-time network (helpers.realtime) against the optimization, on this machine.

    python benchmarks/realtime.py                       # the defaults, trained for --minutes (20)
    python benchmarks/realtime.py --grid --steps 2000   # content layer × style weight, + batch norm
    python benchmarks/realtime.py --steps 1500 --track-every 100   # the held-out loss as it trains
    python benchmarks/realtime.py --quick               # a smoke run

Trains on the bundled photos (images/photos) for The Starry Night and judges each network on the
held-out city photo at 256 px by the optimization's own loss terms (`StyleTransfer.losses`),
beside the optimization with its defaults (300 Adam steps). Also: one pass's time, images per
second at 256 and 512 px, and the flicker of a pan (`helpers.realtime.flicker`). Writes
realtime-<machine>.json, one PNG per network, and the first network's model file to --out.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.run import describe_machine, sync  # noqa: E402
from helpers import StyleTransfer, bundled_images, load_image, save_image, stylize  # noqa: E402
from helpers.config import TrainingConfig  # noqa: E402
from helpers.device import pick_device  # noqa: E402
from helpers.images import images_dir  # noqa: E402
from helpers.realtime import Trainer, flicker, pan_frames, photo_files, save_model  # noqa: E402

EVAL_PX = 256
PAN = {"frames": 16, "shift": 3}
GRID = [{"content_layers": ("relu4_2",), "style_weight": 30.0}, {"content_layers": ("relu2_2",), "style_weight": 30.0},
        {"content_layers": ("relu4_2",), "style_weight": 100.0}, {"content_layers": ("relu2_2",), "style_weight": 100.0},
        {"norm": "batch"}]


def images_per_second(net, device, px, dtype=None, repeats=None):
    x = torch.rand(1, 3, px * 3 // 4, px, device=device)
    net = net.to(device).eval()
    repeats = repeats or (50 if device.type == "cuda" else 3)
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        net(x)
        sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            net(x)
        sync(device)
    return repeats / (time.perf_counter() - start)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, help="training steps per network (default: as many as --minutes allow)")
    p.add_argument("--minutes", type=float, default=20.0, help="training time per network without --steps")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--grid", action="store_true", help="content layer × style weight, and batch norm")
    p.add_argument("--variants", help="a JSON list of TrainingConfig settings, one network each (replaces --grid)")
    p.add_argument("--track-every", type=int, default=0, metavar="N",
                   help="also judge the held-out photo every N training steps (the curve goes in the JSON)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args(argv)
    device = pick_device(args.device)
    machine, slug = describe_machine(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    eval_px = 64 if args.quick else EVAL_PX
    opt_steps = 3 if args.quick else 300
    city, painting = bundled_images("content")["city"], bundled_images("style")["starry_night"]
    files = photo_files(images_dir() / "photos", exclude=[city, painting])
    results = {"machine": machine, "command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "eval_px": eval_px, "photos": len(files)}
    path = out / f"realtime-{slug}.json"

    def save():
        path.write_text(json.dumps(results, indent=1, default=str))

    judge = StyleTransfer(city, painting, size_px=eval_px, device=str(device))
    held_out = judge.content.detach().clone()

    def losses_of(image):
        with torch.no_grad():
            return {k: v.item() for k, v in judge.losses(image.to(device)).items()}

    start = time.perf_counter()
    optimized = stylize(city, painting, size_px=eval_px, steps=opt_steps, device=str(device))
    sync(device)
    results["optimization"] = {"steps": opt_steps, "seconds": time.perf_counter() - start,
                               **losses_of(optimized.image)}
    save_image(optimized.image, out / f"realtime-{slug}-optimization.png", overwrite=True)
    pan = pan_frames(city, eval_px, 4 if args.quick else PAN["frames"], PAN["shift"])
    print(json.dumps(results["optimization"]), flush=True)

    variants = json.loads(args.variants) if args.variants else GRID if args.grid else [{}]
    variants = [{k: tuple(v) if isinstance(v, list) else v for k, v in variant.items()} for variant in variants]
    results["networks"] = []
    for i, variant in enumerate(variants):
        sizes = ({"steps": 3, "crop_px": 40, "batch_size": 2} if args.quick else
                 {"steps": args.steps or 10**9, "crop_px": min(args.crop, eval_px), "batch_size": args.batch})
        config = TrainingConfig(photo_px=eval_px, style_px=eval_px, device=str(device),
                                report_every=args.track_every or 50,
                                **{**sizes, **variant})  # a variant may set its own steps or batch
        trainer = Trainer(painting, files, config)
        deadline = time.perf_counter() + 60 * args.minutes
        track = []  # (step, held-out style, held-out content) as training goes

        def judge_held_out(progress):
            losses = losses_of(progress.image)
            track.append((progress.step, losses["style"], losses["content"]))

        trainer.run(stop=None if args.steps or args.quick else (lambda: time.perf_counter() > deadline),
                    callback=judge_held_out if args.track_every else None,
                    preview=held_out if args.track_every else None)
        net = trainer.net.eval()
        x = held_out.to(device)
        with torch.no_grad():
            net(x)
            sync(device)
            times = []
            for _ in range(20 if device.type == "cuda" else 5):
                t = time.perf_counter()
                y = net(x).clamp(0, 1)
                sync(device)
                times.append(time.perf_counter() - t)
            frames = [net(f.to(device)).clamp(0, 1).cpu() for f in pan]
        one_pass = sorted(times)[len(times) // 2]
        name = "-".join(f"{k}={','.join(v) if isinstance(v, tuple) else v}" for k, v in variant.items()) or "defaults"
        row = {"variant": name, "settings": {k: v for k, v in config.as_dict().items() if k != "steps"},
               "steps": trainer.step, "train_seconds": trainer.seconds,
               "seconds_per_step": trainer.seconds / max(1, trainer.step), "one_pass_seconds": one_pass,
               **losses_of(y), "flicker": flicker(frames, PAN["shift"])}
        if track:
            row["held_out_track"] = track
            best = min(track, key=lambda t: t[1])
            row["held_out_best"] = {"step": best[0], "style": best[1], "content": best[2]}
        row["style_vs_optimization"] = row["style"] / results["optimization"]["style"]
        row["content_vs_optimization"] = row["content"] / results["optimization"]["content"]
        row["speedup_vs_optimization"] = results["optimization"]["seconds"] / one_pass
        if i == 0:
            row["images_per_second"] = {f"{where} {px}": images_per_second(net, d, px, dtype)
                                        for where, d, dtype in ([("cpu float32", torch.device("cpu"), None)]
                                                                + ([("gpu float32", device, None),
                                                                    ("gpu bfloat16", device, torch.bfloat16)]
                                                                   if device.type == "cuda" else []))
                                        for px in ((64,) if args.quick else (256, 512))}
            save_model(trainer.net, out / f"realtime-{slug}.pt", trainer.settings(), overwrite=True)
        save_image(y, out / f"realtime-{slug}-{name.replace('=', '').replace(',', '')}.png", overwrite=True)
        results["networks"].append(row)
        save()
        print(json.dumps(row, default=str), flush=True)
    save()
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
