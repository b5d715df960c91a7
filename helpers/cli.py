"""`python -m helpers`: stylize a photo from the command line.

    python -m helpers                              # the bundled city photo as The Starry Night
    python -m helpers photo.jpg painting.jpg -o out.png --size 512 --steps 500
    python -m helpers train painting.jpg photos/ -o painting.pt   # see helpers.realtime_cli
    python -m helpers figure3 -o grid/             # the paper's Figure 3, see helpers.figure3
"""

import signal
import sys
from pathlib import Path

# Only what the parser needs is imported here, and none of it imports PyTorch: --help and a
# bad flag answer at once. The engine and its libraries are imported inside the functions
# that run it.
from .config import (INITS, OPTIMIZERS, POOLING_NAMES, PRECISIONS, PRESERVE_COLOR_MODES, WEIGHTS_NAMES,
                     StyleTransferConfig)
from .errors import OneLineParser, StyleTransferError
from .realtime_cli import SUBCOMMANDS

DEFAULTS = StyleTransferConfig()


def build_parser():
    p = OneLineParser(
        prog="python -m helpers",
        description="Neural style transfer by optimization (Gatys, Ecker & Bethge): repaint "
                    "CONTENT in the style of STYLE. With no images, uses the bundled city photo "
                    "and The Starry Night.",
        epilog="The real-time network (Johnson et al. 2016), trained once per painting, then one pass per photo: "
               "python -m helpers train --help, python -m helpers apply --help. The paper's Figure 3 (style "
               "layers x alpha/beta): python -m helpers figure3 --help.",
    )
    p.add_argument("content", nargs="?", help="the photo (default: images/content/city.jpg)")
    p.add_argument("style", nargs="*", help="one or more style images (default: images/style/starry_night.jpg)")
    p.add_argument("-o", "--output", help="where to write the result (default: CONTENT-STYLE.png, never overwriting)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    g = p.add_argument_group("size and length")
    g.add_argument("--size", type=int, metavar="PX",
                   help="long edge of the result, in one run of --steps (default: the main job, coarse to fine: "
                        "256 then 512 px on a CPU, 512 then 1024 px on a GPU)")
    g.add_argument("--steps", type=int,
                   help=f"optimizer steps, at each size with --sizes (default: {DEFAULTS.steps} with --size; "
                        "the main job: 300 + 150 on a GPU; on a CPU 150 + 60 or fewer, sized to about two minutes)")
    g = p.add_argument_group("the loss")
    g.add_argument("--content-weight", type=float, default=DEFAULTS.content_weight, help="alpha (default: %(default)s)")
    g.add_argument("--style-weight", type=float, default=DEFAULTS.style_weight, help="beta (default: %(default)s)")
    g.add_argument("--tv-weight", type=float, default=DEFAULTS.tv_weight, help="total variation (default: %(default)s)")
    g.add_argument("--content-layers", default=",".join(DEFAULTS.content_layers), metavar="LAYERS", help="comma-separated (default: %(default)s)")
    g.add_argument("--style-layers", default=",".join(DEFAULTS.style_layers), metavar="LAYERS", help="comma-separated (default: %(default)s)")
    g.add_argument("--style-layer-weights", metavar="W,W,...", help="one weight per style layer (default: equal)")
    g.add_argument("--style-blend-weights", metavar="W,W,...", help="one weight per style image (default: equal)")
    g.add_argument("--style-scale", type=float, default=DEFAULTS.style_scale, help="style image size relative to the output (default: %(default)s)")
    g = p.add_argument_group("the optimization")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULTS.optimizer, type=str.lower)
    g.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float, default=None,
                   help="step size (default: 0.02 for adam, 1 for lbfgs)")
    g.add_argument("--init", choices=INITS, default=DEFAULTS.init, type=str.lower, help="start from the photo or from noise (default: %(default)s)")
    g.add_argument("--init-image", metavar="PATH", help="start from this image instead")
    g.add_argument("--seed", type=int, default=DEFAULTS.seed)
    g = p.add_argument_group("beyond the basics")
    g.add_argument("--preserve-color", choices=PRESERVE_COLOR_MODES, default=DEFAULTS.preserve_color, type=str.lower,
                   help="keep the photo's colours: luminance (style on brightness only) or histogram "
                        "(style recoloured to the photo's first) (default: %(default)s)")
    g.add_argument("--sizes", metavar="PX,PX,...",
                   help="coarse to fine, e.g. 256,512,1024: --steps at each size, each starting from the "
                        "previous result upsampled; the last is the output size (replaces --size)")
    g.add_argument("--normalized-network", action="store_true",
                   help="the paper's VGG-19: each filter rescaled to mean activation 1 over the bundled "
                        "images (measured once, then cached)")
    g.add_argument("--gif", metavar="PATH", help="also write the optimization as an animated GIF")
    g.add_argument("--frames", metavar="DIR", help="also keep its frames as PNG files in this (new or empty) folder")
    g.add_argument("--gif-every", type=int, metavar="N", help="a frame every N steps (default: about 50 frames)")
    g = p.add_argument_group("the network and the machine")
    g.add_argument("--weights", choices=WEIGHTS_NAMES, default=DEFAULTS.weights, type=str.lower,
                   help="caffe: the original VGG-19 (offline); torchvision: downloads 548 MB once")
    g.add_argument("--pooling", choices=POOLING_NAMES, default=DEFAULTS.pooling, type=str.lower)
    g.add_argument("--device", default=DEFAULTS.device, help="auto, cuda, mps or cpu (default: %(default)s)")
    g.add_argument("--precision", choices=PRECISIONS, default=DEFAULTS.precision, type=str.lower,
                   help="auto: the fastest of float32, bfloat16 and float16 (a T4) that this machine "
                        "runs, measured once (a few seconds) and cached; never slower than float32. "
                        "The environment variable NST_PRECISION, if set, overrides it "
                        "(default: %(default)s)")
    g.add_argument("--clear-cache", action="store_true",
                   help="delete what was measured or decoded once and cached (auto's precision, the "
                        "decoded weights, the normalized network's means) and exit")
    g.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false",
                   help="on a GPU, queue every step from Python instead of replaying a recorded one")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p



def _floats(text, what):
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise StyleTransferError(f"{what} must be numbers separated by commas, got {text!r}") from None


#: `python -m helpers` without --size or --sizes: (sizes, steps at each) by device. On a GPU,
#: 1024 px; on a CPU, 512 px with steps chosen by `plan_main_job` to fit about two minutes
#: (the second size starts from the first's result, so it needs few steps).
MAIN_JOB = {"cpu": ((256, 512), (150, 60)), "gpu": ((512, 1024), (300, 150))}
#: The CPU main job's plans, richest first: (steps at 256 px, steps at 512 px). The first whose
#: predicted time fits `MAIN_JOB_BUDGET_S` runs; the last one runs on any slower CPU.
MAIN_JOB_CPU_PLANS = ((150, 60), (120, 55), (100, 50), (80, 50), (60, 45), (50, 40), (40, 30))
#: Seconds of steps the CPU main job is planned for; start-up, loading and saving add ~10 s.
MAIN_JOB_BUDGET_S = 130.0
#: One engine step at the defaults, in VGG-19 passes at 128 px (`notebook.measure_cpu_pass`) per
#: 128 × 128 pixels of the picture: measured 0.78 at 256 px and 0.74 at 512 px on the 2-core
#: Zen 2 EPYC (0.229 s a pass; 0.533 and 2.04 s a step on the 4:3 city photo).
STEP_IN_PASSES = 0.78


def plan_main_job(pass_s, aspect=0.75, sizes=(256, 512), plans=MAIN_JOB_CPU_PLANS, budget_s=MAIN_JOB_BUDGET_S):
    """(steps at each size, predicted seconds): the first of `plans` whose steps fit `budget_s`
    on a CPU whose VGG-19 pass at 128 px takes `pass_s`; `aspect` is the photo's short edge over
    its long edge."""
    for plan in plans:
        seconds = predicted_seconds(pass_s, aspect, sizes, plan)
        if seconds <= budget_s:
            return plan, seconds
    return plan, seconds  # the slowest CPUs: the shortest plan, over budget


def predicted_seconds(pass_s, aspect, sizes, steps):
    """The steps' time: each step costs `STEP_IN_PASSES` passes per 128 × 128 pixels."""
    return sum(n * pass_s * STEP_IN_PASSES * px * round(px * aspect) / 128 ** 2 for px, n in zip(sizes, steps))


def _aspect(source):
    """The picture's short edge over its long edge, from its header (`memory.planned_shape`;
    0.75 where it cannot be read: the run will say why)."""
    from .memory import planned_shape

    shape = planned_shape(source, None)
    return min(shape) / max(shape) if shape else 0.75


def _sizes_and_steps(args, device_type, pass_s=None, aspect=0.75):
    """(sizes or None, steps at each): --sizes, the main job when no size is given, or --size.
    pass_s: this CPU's VGG-19 pass at 128 px, which sizes the CPU main job (`plan_main_job`)."""
    from .multiscale import parse_sizes

    if args.sizes:
        sizes = parse_sizes(args.sizes)
        return sizes, (_or_default(args.steps, DEFAULTS.steps),) * len(sizes)
    if args.size is None:
        sizes, steps = MAIN_JOB["cpu" if device_type == "cpu" else "gpu"]
        if args.steps is not None:
            return sizes, (args.steps,) * len(sizes)
        if device_type == "cpu" and pass_s is not None:
            steps, _ = plan_main_job(pass_s, aspect, sizes)
        return sizes, steps
    return None, (_or_default(args.steps, DEFAULTS.steps),)


def _or_default(value, default):
    return default if value is None else value


def _config_from(args):
    return StyleTransferConfig(
        size_px=_or_default(args.size, DEFAULTS.size_px), steps=_or_default(args.steps, DEFAULTS.steps),
        content_layers=args.content_layers,
        style_layers=args.style_layers, style_layer_weights=_floats(args.style_layer_weights, "--style-layer-weights"),
        content_weight=args.content_weight, style_weight=args.style_weight, tv_weight=args.tv_weight,
        optimizer=args.optimizer, learning_rate=args.learning_rate, init=args.init, seed=args.seed,
        device=args.device, weights=args.weights, pooling=args.pooling, style_scale=args.style_scale,
        style_blend_weights=_floats(args.style_blend_weights, "--style-blend-weights"),
        precision=args.precision, report_every=1, preserve_color=args.preserve_color,
        normalized_network=args.normalized_network, cuda_graphs=args.cuda_graphs,
    ).validate()


def _output_path(args, content, styles):
    """-o OUTPUT, or CONTENT-STYLE.png under a name that is still free; checked before the run."""
    from .images import check_image_path, free_path

    if args.output:
        out = Path(args.output)
    else:
        out = free_path(Path(f"{Path(content).stem}-{'+'.join(Path(s).stem for s in styles)}.png"))
    check_image_path(out, args.overwrite)  # before minutes of work, not after
    return out


def run(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS and not Path(argv[0]).exists():
        from . import realtime_cli  # the real-time network: train one, apply one

        return realtime_cli.run(argv)
    if argv and argv[0] == "figure3" and not Path(argv[0]).exists():
        from . import figure3  # the paper's Figure 3: style layers x alpha/beta

        return figure3.run(argv[1:])
    from .cores import CoreWatch

    watch = CoreWatch()  # how busy other programs keep the cores, measured while we load
    args = build_parser().parse_args(argv)
    if args.clear_cache:
        from .cache import cache_dir, clear_cache

        removed = clear_cache()
        print(f"Deleted {len(removed)} cached file{'s' * (len(removed) != 1)} from {cache_dir()}")
        return 0
    from . import memory

    try:
        return _run(args, watch)
    except memory.NotEnoughMemory as err:  # the same one line, in the flag the reader typed
        raise StyleTransferError(err.message(None if args.sizes else "--size")) from None
    finally:
        if getattr(watch, "threads_before", None):  # main() called in a Python session: leave it as it was
            import torch

            torch.set_num_threads(watch.threads_before)


def _threads_left_by_others(watch, quiet):
    """On a CPU whose cores other programs keep busy, compute on the free ones only (see
    `helpers.cores`); OMP_NUM_THREADS, where set, decides instead."""
    import os

    import torch

    from .cores import threads_for

    if os.environ.get("OMP_NUM_THREADS"):
        return
    busy, threads = watch.busy_elsewhere(), torch.get_num_threads()
    use = threads_for(busy, len(watch.cores), threads)
    if use < threads:
        watch.threads_before = threads
        torch.set_num_threads(use)
        if not quiet:
            print(f"Other programs keep about {busy:.1f} of this machine's {len(watch.cores)} cores busy: "
                  f"computing on {use} thread{'s' * (use != 1)}, not {threads}", file=sys.stderr)


def _run(args, watch=None):
    from tqdm.auto import tqdm

    from . import memory
    from .device import describe_device, pick_device
    from .images import bundled_images, save_image
    from .multiscale import stylize_multiscale
    from .optimization import StyleTransfer

    content = args.content or bundled_images("content")["city"]
    styles = args.style or [bundled_images("style")["starry_night"]]
    config = _config_from(args)
    out = _output_path(args, content, styles)

    device_type = pick_device(config.device).type
    if device_type == "cpu" and watch is not None:
        _threads_left_by_others(watch, args.quiet)
    pass_s = aspect = None
    if device_type == "cpu" and args.size is None and not args.sizes and args.steps is None:
        from .notebook import measure_cpu_pass  # the notebooks' measure: sized the same way

        precision, pass_s = measure_cpu_pass("cpu", config)
        aspect = _aspect(content)
    sizes, steps = _sizes_and_steps(args, device_type, pass_s, aspect or 0.75)
    if pass_s is not None and not args.quiet:
        print(f"This CPU runs a VGG-19 pass at 128 px in {pass_s:.2f} s ({precision}): "
              f"{' + '.join(map(str, steps))} steps at {' → '.join(map(str, sizes))} px, "
              f"about {predicted_seconds(pass_s, aspect, sizes, steps) / 60:.1f} min of steps", file=sys.stderr)
    total_steps = sum(steps)
    recorder = _frame_recorder(args, total_steps)  # its --frames folder is made at the first frame
    # A size that cannot fit is refused by the engine, in one line, before anything is loaded,
    # written or printed: coarse to fine, by its first engine, for the largest size, which is
    # why the run is announced at its first step there.
    if sizes:
        config = config.replace(size_px=sizes[-1], steps=steps[-1])
        where = f"coarse to fine at {', '.join(map(str, sizes))} px"
        device = pick_device(config.device)
    else:
        engine = StyleTransfer(content, styles, config, init_image=args.init_image)
        h, w = engine.content.shape[-2:]
        where, device = f"({w}×{h} px)", engine.device
    bar = None

    def announce():
        nonlocal bar
        if not args.quiet:
            print(f"Stylizing {content} {where} with {', '.join(map(str, styles))} "
                  f"on {describe_device(device)}", file=sys.stderr)
        bar = tqdm(total=total_steps, unit="step", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)

    def on_progress(progress):
        if bar is None:
            announce()
        bar.update(progress.step - bar.n)
        bar.set_postfix(loss=f"{progress.losses['total']:.3g}", refresh=False)
        if recorder is not None:
            recorder(progress)

    if sizes:
        result = stylize_multiscale(content, styles, sizes, config, steps=steps, callback=on_progress,
                                    init_image=args.init_image)
        engine, (h, w) = result.extra["engine"], result.image.shape[-2:]
    else:
        announce()
        result = engine.run(callback=on_progress)
    if bar is not None:
        bar.close()
    if memory.ran_out_of_memory(result.stopped) and result.steps_done == 0:
        print(f"error: {result.stopped} Nothing was written.", file=sys.stderr)
        return 2
    metadata = {"Software": "nst-tutorial-helpers (python -m helpers)",
                "Settings": repr(config.as_dict()), "Content": str(content),
                "Style": ", ".join(map(str, styles))}
    save_image(result.image, out, overwrite=args.overwrite, metadata=metadata if out.suffix.lower() == ".png" else None)
    if recorder is not None and args.gif:
        recorder.save_gif(args.gif, overwrite=args.overwrite)
        print(f"Wrote the optimization as {args.gif} ({len(recorder.frames)} frames)", file=sys.stderr)
    if result.stopped == "interrupted":
        print(f"Interrupted at step {result.steps_done}/{total_steps}: saved the best image so far to {out}",
              file=sys.stderr)
        return 130
    if result.stopped:
        kept = "the best image so far" if memory.ran_out_of_memory(result.stopped) else "it"
        print(f"error: {result.stopped} Saved {kept} to {out}", file=sys.stderr)
        return 1
    last = result.history[-1]
    print(f"Saved {out} ({w}×{h} px, {result.steps_done} steps in {result.seconds:.1f} s, "
          f"{result.seconds / max(1, result.steps_done):.3f} s/step)")
    print(_settings_table(config, engine, last))
    return 0


def _frame_recorder(args, total_steps):
    """A FrameRecorder for --gif/--frames (None without them), with the paths checked before the run."""
    if not (args.gif or args.frames):
        return None
    from .export import FrameRecorder, check_gif_path

    if args.gif:
        check_gif_path(args.gif, args.overwrite)
    if args.gif_every is not None and args.gif_every < 1:
        raise StyleTransferError(f"--gif-every must be a positive whole number of steps, got {args.gif_every}")
    return FrameRecorder(args.frames, every=args.gif_every or max(1, total_steps // 50))


def _settings_table(config, engine, last):
    from .device import describe_device

    rows = [
        ("device", describe_device(engine.device)),
        ("weights / pooling", f"{config.weights} / {config.pooling}" + (", normalized" if config.normalized_network else "")),
        ("precision", (f"{str(engine.autocast_dtype).removeprefix('torch.')} features, float32 losses"
                       if engine.autocast_dtype else "float32")
                      + (", each step replayed as a CUDA graph" if engine.use_cuda_graph else "")),
        ("optimizer", f"{config.optimizer}, lr {config.lr():g}, init {config.init}, seed {config.seed}"),
        ("content", f"{', '.join(config.content_layers)} × {config.content_weight:g}"),
        ("style", f"{', '.join(config.style_layers)} × {config.style_weight:g}"
                  + (f" (layer weights {', '.join(f'{w:g}' for w in config.style_layer_weights)})"
                     if config.style_layer_weights else "")),
        ("style scale", f"{config.style_scale:g}"),
        ("preserve colour", config.preserve_color),
        ("total variation", f"{config.tv_weight:g}"),
        ("final losses", f"content {last['content']:.3g}, style {last['style']:.3g}, tv {last['tv']:.3g}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def main(argv=None):
    # Ctrl-C during the run is caught by the engine, which keeps the best image so far.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run(argv)
    except StyleTransferError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (RuntimeError, MemoryError) as err:  # out of memory before the first step: one line too
        from . import memory

        if not memory.is_out_of_memory(err):
            raise
        print(f"error: {memory.out_of_memory_message(err, None, None, None)} Nothing was written.",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted before the run started; nothing was written.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
