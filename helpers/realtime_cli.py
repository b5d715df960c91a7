"""`python -m helpers train` and `python -m helpers apply`: the real-time network from the command line.

    python -m helpers train images/style/starry_night.jpg images/photos -o starry.pt --steps 1000
    python -m helpers apply starry.pt photo.jpg -o photo-starry.png
    python -m helpers apply starry.pt my_photos/ -o stylized/

Like the main command, nothing here imports PyTorch before the arguments are checked.
"""

import sys
import time
from pathlib import Path

from .config import PRECISIONS, WEIGHTS_NAMES, TrainingConfig
from .errors import OneLineParser, StyleTransferError

TRAINING = TrainingConfig()
SUBCOMMANDS = ("train", "apply")


def _layer_weights(text, layers):
    """--style-layer-weights as a tuple; without it, the default shares for the default layers and
    equal shares (None) for any other layers."""
    if text is None:
        same = [x.strip() for x in layers.split(",")] == list(TRAINING.style_layers)
        return TRAINING.style_layer_weights if same else None
    try:
        return tuple(float(w) for w in text.split(","))
    except ValueError:
        raise StyleTransferError(f"--style-layer-weights must be numbers separated by commas, got {text!r}") from None


def train_parser():
    p = OneLineParser(prog="python -m helpers train",
                description="Train a network that stylizes any photo in one pass (Johnson, Alahi & Fei-Fei 2016) "
                            "with the painting STYLE, on the photos in PHOTOS. Interrupted (Ctrl-C)? Run the same "
                            "command again: it resumes from the last checkpoint.")
    p.add_argument("style", help="the painting")
    p.add_argument("photos", nargs="?", help="a folder of training photos (default: the bundled images/photos)")
    p.add_argument("-o", "--output", help="the model file to write (default: STYLE.pt, never overwriting)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--checkpoint", metavar="PATH", help="where to keep the checkpoint (default: OUTPUT.ckpt)")
    p.add_argument("--checkpoint-every", type=int, default=TRAINING.checkpoint_every, metavar="N",
                   help="steps between checkpoints (default: %(default)s)")
    p.add_argument("--download", metavar="SET", help="first download a public photo set into PHOTOS (e.g. "
                   "coco-val2017: 5,000 photos, 778 MB; resumable, checksum checked)")
    p.add_argument("--limit", type=int, metavar="N", help="with --download: use only the first N photos")
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, default=TRAINING.steps, help="(default: %(default)s)")
    g.add_argument("--batch-size", type=int, default=TRAINING.batch_size, help="(default: %(default)s)")
    g.add_argument("--photo-size", type=int, default=TRAINING.photo_px, metavar="PX",
                   help="each photo's long edge before cropping: the size the network is meant for (default: %(default)s)")
    g.add_argument("--crop", type=int, default=TRAINING.crop_px, metavar="PX", help="square crops (default: %(default)s)")
    g.add_argument("--style-size", type=int, default=TRAINING.style_px, metavar="PX",
                   help="the painting's long edge (default: %(default)s)")
    g.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float, default=TRAINING.learning_rate,
                   help="Adam's step on the network's weights (default: %(default)s)")
    g.add_argument("--warmup-steps", type=int, default=TRAINING.warmup_steps, metavar="N",
                   help="content only for N steps, then the style ramped in over N more (default: %(default)s)")
    g.add_argument("--norm", choices=("instance", "batch"), default=TRAINING.norm, type=str.lower,
                   help="(default: %(default)s)")
    g.add_argument("--seed", type=int, default=TRAINING.seed)
    g.add_argument("--preview", metavar="PHOTO", help="also write PHOTO as stylized by the network now and then "
                   "to OUTPUT-preview.png")
    g = p.add_argument_group("the loss (as in the optimization)")
    g.add_argument("--content-weight", type=float, default=TRAINING.content_weight, help="(default: %(default)s)")
    g.add_argument("--style-weight", type=float, default=TRAINING.style_weight, help="(default: %(default)s)")
    g.add_argument("--tv-weight", type=float, default=TRAINING.tv_weight, help="(default: %(default)s)")
    g.add_argument("--content-layers", default=",".join(TRAINING.content_layers), metavar="LAYERS",
                   help="(default: %(default)s)")
    g.add_argument("--style-layers", default=",".join(TRAINING.style_layers), metavar="LAYERS",
                   help="(default: %(default)s)")
    g.add_argument("--style-layer-weights", metavar="W,W,...",
                   help="one share per style layer (default: " + ",".join(map(str, TRAINING.style_layer_weights))
                        + " with the default layers, equal shares with others)")
    g = p.add_argument_group("the machine")
    g.add_argument("--weights", choices=WEIGHTS_NAMES, default=TRAINING.weights, type=str.lower)
    g.add_argument("--device", default=TRAINING.device, help="auto, cuda, mps or cpu (default: %(default)s)")
    g.add_argument("--precision", choices=PRECISIONS, default=TRAINING.precision, type=str.lower,
                   help="the networks' forward passes (default: %(default)s, as in the main command)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def apply_parser():
    p = OneLineParser(prog="python -m helpers apply",
                description="Stylize photos in one pass with a model made by python -m helpers train.")
    p.add_argument("model", help="the model file (.pt)")
    p.add_argument("inputs", nargs="+", metavar="PHOTO", help="photos, or folders of photos")
    p.add_argument("-o", "--output", help="the picture to write for one photo (default: PHOTO-MODEL.png), or a "
                   "folder for several (default: beside each photo); existing files are never replaced")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--size", type=int, metavar="PX", help="resize each photo's long edge first (default: as it is)")
    p.add_argument("--device", default="auto", help="auto, cuda, mps or cpu (default: %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def run(argv):
    command, rest = argv[0], argv[1:]
    if command == "train":
        return _train(train_parser().parse_args(rest))
    return _apply(apply_parser().parse_args(rest))


# --- train ---------------------------------------------------------------------------------------

def _train(args):
    from .images import check_output_path, free_path, images_dir

    style = Path(args.style)
    if not style.is_file():
        raise StyleTransferError(f"{style} does not exist: give the painting's image file")
    photos = Path(args.photos) if args.photos else images_dir() / "photos"
    out = Path(args.output) if args.output else free_path(Path(f"{style.stem}.pt"))
    if out.suffix.lower() != ".pt":
        raise StyleTransferError(f"{out}: a model file's name must end in .pt")
    check_output_path(out, args.overwrite)
    checkpoint = Path(args.checkpoint) if args.checkpoint else out.with_name(out.name + ".ckpt")
    preview_out = out.with_name(f"{out.stem}-preview.png") if args.preview else None
    config = TrainingConfig(
        style_layer_weights=_layer_weights(args.style_layer_weights, args.style_layers),
        steps=args.steps, batch_size=args.batch_size, photo_px=args.photo_size, crop_px=args.crop,
        style_px=args.style_size, content_layers=args.content_layers, style_layers=args.style_layers,
        content_weight=args.content_weight, style_weight=args.style_weight, tv_weight=args.tv_weight,
        learning_rate=args.learning_rate, warmup_steps=args.warmup_steps, norm=args.norm, weights=args.weights, precision=args.precision,
        seed=args.seed, device=args.device, checkpoint_every=args.checkpoint_every, report_every=1,
    ).validate()
    if args.download:
        from .download import fetch_photo_set

        fetch_photo_set(photos, args.download, limit=args.limit, progress=not args.quiet)
    elif args.limit is not None:
        raise StyleTransferError("--limit goes with --download")
    preview = None
    if args.preview:
        from .images import load_image

        preview = load_image(args.preview, config.photo_px)
    from tqdm.auto import tqdm

    from .device import describe_device
    from .realtime import Trainer, save_model

    trainer = Trainer(style, photos, config, checkpoint=checkpoint)
    if not args.quiet:
        resumed = f", resuming from step {trainer.step} of {checkpoint}" if trainer.step else ""
        print(f"Training a network for {style} on {len(trainer.data)} photos in {photos} "
              f"({config.crop_px} px crops, batch {config.batch_size}) on {describe_device(trainer.device)}{resumed}",
              file=sys.stderr)
    bar = tqdm(total=config.steps, initial=trainer.step, unit="step", disable=args.quiet, file=sys.stderr,
               dynamic_ncols=True)
    every = max(1, config.steps // 20)

    def on_progress(progress):
        bar.update(progress.step - bar.n)
        bar.set_postfix(style=f"{progress.losses['style']:.3g}", content=f"{progress.losses['content']:.3g}",
                        refresh=False)
        if preview is not None and (progress.step % every == 0 or progress.step == progress.steps):
            from .images import save_image

            save_image(trainer.stylize(preview), preview_out, overwrite=True)

    trainer.run(callback=on_progress)
    bar.close()
    if trainer.stopped:
        print(f"Interrupted at step {trainer.step}/{config.steps}: the checkpoint {checkpoint} holds it; "
              "run the same command again to resume", file=sys.stderr)
        return 130
    save_model(trainer.net, out, trainer.settings(), overwrite=args.overwrite)
    last = trainer.history[-1]
    print(f"Saved {out} ({trainer.step} steps, {trainer.seconds:.0f} s of training; final losses: content "
          f"{last['content']:.3g}, style {last['style']:.3g}). Apply it: python -m helpers apply {out} PHOTO")
    return 0


# --- apply ----------------------------------------------------------------------------------------

def _inputs(paths):
    from .realtime import photo_files

    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(photo_files(p))
        elif p.is_file():
            files.append(p)
        else:
            raise StyleTransferError(f"{p} does not exist: give photos or folders of photos")
    return files


def _outputs(args, files, model):
    from .images import check_image_path, check_output_path, free_path

    single = len(files) == 1 and not Path(args.inputs[0]).is_dir()
    if single:
        out = Path(args.output) if args.output else free_path(files[0].with_name(f"{files[0].stem}-{model.stem}.png"))
        check_image_path(out, args.overwrite)
        return [out]
    folder = Path(args.output) if args.output else None
    if folder is not None and folder.exists() and not folder.is_dir():
        raise StyleTransferError(f"{folder} is a file: with several photos, -o must be a folder")
    outs = [(folder or f.parent) / f"{f.stem}-{model.stem}.png" for f in files]
    if len(set(outs)) < len(outs):
        raise StyleTransferError("two photos would give the same output name: put them in one folder each")
    for o in outs:
        if o.exists() and not args.overwrite:
            raise StyleTransferError(f"{o} already exists: choose another -o folder or pass --overwrite")
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    for o in outs:
        check_output_path(o, args.overwrite)
    return outs


def _apply(args):
    from .images import check_size

    if args.size is not None:
        check_size(args.size)
    model = Path(args.model)
    files = _inputs(args.inputs)
    outs = _outputs(args, files, model)
    from tqdm.auto import tqdm

    from .images import save_image
    from .realtime import apply_model, check_pass_fits, load_model

    net, settings = load_model(model, args.device)
    for f in files:  # before anything is written: a photo too large for memory stops the whole run
        check_pass_fits(net, f, args.size)
    start, done = time.perf_counter(), 0
    for f, o in tqdm(list(zip(files, outs)), unit="photo", disable=args.quiet or len(files) == 1, file=sys.stderr):
        picture = apply_model(net, f, args.size)
        save_image(picture, o, overwrite=args.overwrite,
                   metadata={"Software": "nst-tutorial-helpers (python -m helpers apply)",
                             "Model": str(model), "Style": str(settings.get("style", "?"))})
        done += 1
    seconds = time.perf_counter() - start
    where = outs[0] if done == 1 else (Path(args.output) if args.output else "beside the photos")
    print(f"Saved {done} picture{'s' * (done != 1)} to {where} ({seconds / done:.2f} s each, loading and "
          "saving included)")
    _stroke_size_note(files, args.size, settings.get("photo_px"))
    return 0


def _stroke_size_note(files, size_px, trained_px):
    """One line when the photos are far larger than those the network learned on: its strokes keep
    their size in pixels, so on a 4000 px photo a network trained at 512 px paints a fine texture."""
    from .memory import planned_shape

    if size_px is not None or not trained_px:
        return
    edges = [(max(shape), f) for f in files if (shape := planned_shape(f, None))]
    if not edges or max(edges)[0] <= 2 * trained_px:
        return
    largest, f = max(edges)
    print(f"Note: this network learned its strokes on photos of {trained_px} px, and {f.name} is {largest} px "
          f"across, so they come out about {largest / trained_px:.0f} times finer; --size {2 * trained_px} "
          "makes them bolder (and the picture smaller)", file=sys.stderr)
