"""Figure 3 of Gatys, Ecker & Bethge (2015), *A Neural Algorithm of Artistic Style*
(arXiv:1508.06576v2): the style taken from more and more layers (rows: `relu1_1` only, then up
to `relu2_1`, ... up to `relu5_1`, the content always at `relu4_2`) against the ratio α/β of
content to style (columns: from the painting's texture on the left to the photo on the right).
Every panel starts from white noise, on the paper's network (VGG-19 normalized, average pooling),
with the paper's loss (`StyleTransfer.paper_weights`: equal layer weights, raw units).

    python -m helpers figure3                     # the bundled photo and The Starry Night
    python -m helpers figure3 photo.jpg painting.jpg -o grid/ --size 256 --steps 300

It writes one picture per panel, `<deepest style layer>_<ratio>.png` (e.g. `relu5_1_1e-07.png`),
the assembled grid `figure3.png`, and `figure3.json` (settings, machine, each panel's losses).

**Our columns are not the paper's numbers.** With this package's network, the paper's own
ratios 1e-5 ... 1e-2 all keep the photo (at 128 px, Adam from noise: the 1e-5 panel is the
photo with the painting's colours, 1e-4 is the plain photo). Our grid spans texture -> photo
from 1e-8 to 1e-5: `RATIOS` are each the paper's column / 1000, and each column is labelled
with both. The paper's first author's own PyTorch code (leongatys/PytorchNeuralStyleTransfer,
`style_weights = 1e3/n**2`, content weight 1, 512 px) amounts in these units to α/β between
about 1.5e-7 (`relu1_1`) and 1e-5 (`relu4_1`, `relu5_1`): the same decades as ours.

**A pair may need more columns.** Where the painting paints weakly at the shallow layers, the
rows that take the style from `relu1_1` or `relu2_1` alone can keep the photo even at 1e-8 (the
astronaut and the stained tissue of `images/`: content distance 0.34 and 0.31 there). So, by
default, while some row's left panel is not yet texture or its right panel not yet the photo
(`unspanned_side`, judged by the package's own losses against a flat grey picture's), the grid
grows by a column a decade further out on that side, up to `MAX_WIDEN` per side. Explicit
`--ratios` are kept as given unless `--widen N` is added.

Two departures from the paper, both measured (notes in notebook 04):
- **Adam, not L-BFGS.** torch's L-BFGS with a strong-Wolfe line search stalls at the texture
  end: at α/β <= 1e-7 its line search fails from the first steps and the panel stays grey.
  Adam's steps do not depend on the scale of the loss. `--optimizer lbfgs` is there to see it.
- **A quiet start:** mid-grey plus white noise of amplitude `NOISE_AMPLITUDE`, not noise over
  the whole range: from full-range noise, 40 to 200 steps leave coloured grain everywhere.
"""

import json
import sys
import time
from pathlib import Path

from .errors import OneLineParser, StyleTransferError

ROWS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")  #: each row's deepest style layer
PAPER_RATIOS = (1e-5, 1e-4, 1e-3, 1e-2)  #: the paper's columns, α/β
PAPER_SHIFT = 1e-3  #: ours = the paper's × this: where our network spans texture -> photo
RATIOS = tuple(r * PAPER_SHIFT for r in PAPER_RATIOS)  #: our columns, α/β in the paper's units
NOISE_AMPLITUDE = 0.1  #: the start: 0.5 + uniform noise in ±NOISE_AMPLITUDE/2
LEARNING_RATE = 0.05  #: Adam's, from noise (the engine's default, 0.02, is tuned for a start from the photo)
#: A row spans the figure when its left panel is texture, at least TEXTURE_SHARE of a flat grey
#: picture's content distance (grey holds nothing of the photo), and its right panel keeps the
#: photo, at most PHOTO_SHARE of it (Judge's measure).
TEXTURE_SHARE, PHOTO_SHARE = 0.9, 0.5
MAX_WIDEN = 2  #: at most this many columns added on each side, a decade each
CPU_SIZE_PX, CPU_STEPS = 128, 200  #: a CPU's default: 20 panels in about ten minutes on two cores
GPU_SIZE_PX, GPU_STEPS = 512, 1000  #: a GPU's default: the paper's size


def panel_name(layer, ratio):
    """The file name of one panel: `relu5_1_1e-07.png` for the row up to relu5_1, α/β = 1e-7."""
    return f"{layer}_{ratio:.0e}.png"


def column_label(ratio, shift=PAPER_SHIFT):
    """A column's title: our α/β and the paper's column it stands for, e.g.
    'α/β = 1e-08 (paper: 1e-05)'."""
    return f"α/β = {ratio:.0e} (paper: {ratio / shift:.0e})"


def quiet_noise(shape, seed=0, amplitude=NOISE_AMPLITUDE):
    """White noise around mid-grey: 0.5 + amplitude × (u − ½), u uniform in [0, 1), each pixel
    and channel drawn independently (seeded)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return 0.5 + amplitude * (torch.rand(shape, generator=generator) - 0.5)


def make_panel(content, style, layer, ratio, size_px=CPU_SIZE_PX, steps=CPU_STEPS, optimizer="adam",
               seed=0, model=None, **options):
    """One panel: style from `relu1_1` up to `layer`, content at `relu4_2`, the paper's loss with
    α/β = `ratio` (`StyleTransfer.paper_weights`), from `quiet_noise`, on the paper's network.
    Returns the engine's result."""
    from .images import load_image
    from .optimization import StyleTransfer

    rows = ROWS[: _row(layer) + 1]
    start = quiet_noise(load_image(content, size_px).shape, seed)
    settings = dict(size_px=size_px, style_layers=rows, content_layers=("relu4_2",), normalized_network=True,
                    pooling="avg", optimizer=optimizer, tv_weight=0, seed=seed, precision="float32")
    if optimizer == "adam":
        settings["learning_rate"] = LEARNING_RATE
    settings.update(options)
    engine = StyleTransfer(content, style, init_image=start, model=model, **settings)
    engine.update(**engine.paper_weights(ratio))
    return engine.run(steps)


class Judge:
    """The package's own measure of a panel, the same for every panel: the default objective's
    unweighted terms (content: relu4_2's mean squared difference over its target's mean square;
    style: the per-layer-normalized Gram distance averaged over relu1_1 ... relu5_1), on the
    default network at the panel's size. 0 is the photo's content, or the painting's style."""

    def __init__(self, content, style, size_px):
        from .optimization import StyleTransfer

        self.engine = StyleTransfer(content, style, size_px=size_px, precision="float32")

    def __call__(self, image):
        import torch

        engine, config = self.engine, self.engine.config
        with torch.no_grad():
            terms = engine.losses(image.to(engine.device))
        return {"content": terms["content"].item() / config.content_weight,
                "style": terms["style"].item() / config.style_weight}


def unspanned_side(contents, grey, texture=TEXTURE_SHARE, photo=PHOTO_SHARE):
    """Which end of the grid is still missing: 'left' if some row's left panel is not yet the
    painting's texture (content distance below `texture` × `grey`, a flat grey picture's), else
    'right' if some row's right panel does not keep the photo (above `photo` × `grey`), else
    None. `contents[layer]`: that row's content distances, left to right."""
    if any(row[0] < texture * grey for row in contents.values()):
        return "left"
    if any(row[-1] > photo * grey for row in contents.values()):
        return "right"
    return None


def plot_grid(panels, rows=ROWS, ratios=RATIOS, size_in=2.6, shift=PAPER_SHIFT):
    """The assembled grid as a matplotlib figure: `panels[(layer, ratio)]` image tensors,
    one row per deepest style layer, one column per ratio (each titled with both α/β)."""
    import matplotlib.pyplot as plt

    from .images import tensor_to_image

    first = next(iter(panels.values()))
    h, w = first.shape[-2:]
    fig, axes = plt.subplots(len(rows), len(ratios), squeeze=False,
                             figsize=(size_in * len(ratios), size_in * len(rows) * h / w + 0.4))
    for i, layer in enumerate(rows):
        for j, ratio in enumerate(ratios):
            ax = axes[i, j]
            ax.set_xticks([]), ax.set_yticks([])
            if (layer, ratio) in panels:
                ax.imshow(tensor_to_image(panels[layer, ratio]))
            if i == 0:
                ax.set_title(column_label(ratio, shift), fontsize=9)
            if j == 0:
                ax.set_ylabel(f"style up to\n{layer}", fontsize=9)
    fig.tight_layout()
    return fig


def _machine():
    import platform

    import torch

    from .device import cpu_family_model, cpu_name

    return {"cpu": cpu_name(), "cpu_family_model": cpu_family_model(), "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "torch": torch.__version__, "python": platform.python_version()}


def make_grid(content, style, out_dir, rows=ROWS, ratios=RATIOS, size_px=None, steps=None, optimizer="adam",
              overwrite=False, quiet=False, widen=MAX_WIDEN):
    """Make the whole grid into `out_dir` (created if needed; existing files are never replaced
    unless `overwrite`): one PNG per panel, `figure3.png`, `figure3.json`. Returns the json's dict.

    A pair of pictures may need other ratios than the bundled pair: while some row does not yet
    run from texture to photo (`unspanned_side`), a column a decade further out is added on that
    side, at most `widen` per side (0: the columns as given)."""
    import matplotlib

    matplotlib.use("Agg")
    from tqdm.auto import tqdm

    from .device import pick_device
    from .images import save_image

    gpu = pick_device("auto").type == "cuda"
    size_px = size_px or (GPU_SIZE_PX if gpu else CPU_SIZE_PX)
    steps = steps or (GPU_STEPS if gpu else CPU_STEPS)
    out_dir = Path(out_dir)
    ratios = sorted(ratios)
    reach = [_decades(ratios[0], -k) for k in range(1, widen + 1)] + [_decades(ratios[-1], k) for k in range(1, widen + 1)]
    names = [panel_name(layer, ratio) for layer in rows for ratio in [*ratios, *reach]] + ["figure3.png", "figure3.json"]
    if out_dir.exists() and not out_dir.is_dir():
        raise StyleTransferError(f"{out_dir} is a file, not a folder; give -o a folder for the grid")
    taken = [n for n in names if (out_dir / n).exists()]
    if taken and not overwrite:
        raise StyleTransferError(f"{out_dir / taken[0]} already exists (and {len(taken) - 1} more of the grid's "
                                 "files); choose another -o folder, or add --overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)
    judge = Judge(content, style, size_px)
    import torch

    grey = judge(torch.full_like(judge.engine.photo, 0.5))["content"]
    panels, distances, record, began = {}, {}, [], time.perf_counter()
    bar = tqdm(total=len(rows) * len(ratios), unit="panel", disable=quiet, desc="Figure 3")

    def column(ratio):
        for layer in rows:
            t0 = time.perf_counter()
            result = make_panel(content, style, layer, ratio, size_px, steps, optimizer)
            panels[layer, ratio] = result.image
            save_image(result.image, out_dir / panel_name(layer, ratio), overwrite=True)
            judged = judge(result.image)
            distances[layer, ratio] = judged["content"]
            record.append({"file": panel_name(layer, ratio), "style_up_to": layer, "ratio": ratio,
                           "paper_ratio": ratio / PAPER_SHIFT, "steps": result.steps_done,
                           "seconds": round(time.perf_counter() - t0, 1),
                           "content": round(judged["content"], 4), "style": round(judged["style"], 4)})
            bar.set_postfix_str(f"{layer} {ratio:.0e}: content {judged['content']:.2f} style {judged['style']:.2f}")
            bar.update()

    for ratio in ratios:
        column(ratio)
    added = {"left": 0, "right": 0}
    while True:
        side = unspanned_side({layer: [distances[layer, r] for r in ratios] for layer in rows}, grey)
        if side is None or added[side] >= widen:
            break
        added[side] += 1
        ratio = _decades(ratios[0], -1) if side == "left" else _decades(ratios[-1], 1)
        ratios = [ratio, *ratios] if side == "left" else [*ratios, ratio]
        bar.total += len(rows)
        bar.refresh()
        column(ratio)
    bar.close()
    record.sort(key=lambda p: (rows.index(p["style_up_to"]), p["ratio"]))
    photo = judge(judge.engine.photo)
    fig = plot_grid(panels, rows, ratios)
    fig.savefig(out_dir / "figure3.png", dpi=100)
    summary = {
        "figure": "Gatys, Ecker & Bethge (2015), A Neural Algorithm of Artistic Style, arXiv:1508.06576v2, Figure 3",
        "content": Path(content).name, "style": Path(style).name, "size_px": size_px, "steps": steps, "optimizer": optimizer,
        "learning_rate": LEARNING_RATE if optimizer == "adam" else 1.0, "start": f"0.5 + {NOISE_AMPLITUDE} x (uniform - 0.5)",
        "network": "VGG-19 (caffe weights), normalized, average pooling", "tv_weight": 0,
        "ratios": [{"ours": r, "paper": r / PAPER_SHIFT} for r in ratios],
        "judge": "unweighted default objective: content at relu4_2, style over relu1_1..relu5_1, 0 = the target",
        "photo_itself": {k: round(v, 4) for k, v in photo.items()},
        "grey_picture": {"content": round(grey, 4)},
        "columns_added": added,
        "spans": side is None,
        "spans_rule": f"every row's left panel >= {TEXTURE_SHARE} x the grey picture's content distance, "
                      f"its right panel <= {PHOTO_SHARE} x",
        "seconds": round(time.perf_counter() - began, 1), "machine": _machine(), "panels": record,
    }
    (out_dir / "figure3.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def build_parser():
    p = OneLineParser(
        prog="python -m helpers figure3",
        description="Reproduce Figure 3 of Gatys, Ecker & Bethge (2015), 'A Neural Algorithm of Artistic Style' "
                    "(arXiv:1508.06576v2): rows take the style from relu1_1 only, then up to relu2_1 ... relu5_1, columns "
                    "raise alpha/beta from the painting's texture to the photo; every panel starts from noise, "
                    "on the paper's network (normalized VGG-19, average pooling) and loss. Our columns are the "
                    "paper's ratios / 1000: with this network the paper's own 1e-5 ... 1e-2 all keep the photo; "
                    "each column is labelled with both.",
        epilog="Writes DIR/<layer>_<ratio>.png per panel (e.g. relu5_1_1e-07.png), DIR/figure3.png and "
               "DIR/figure3.json (settings, machine, each panel's content and style losses). Adam, not the "
               "paper's L-BFGS: L-BFGS stalls at the texture end (see helpers/figure3.py).",
    )
    p.add_argument("content", nargs="?", help="the photo (default: the bundled city photo)")
    p.add_argument("style", nargs="?", help="the painting (default: The Starry Night)")
    p.add_argument("-o", "--output", default="figure3", metavar="DIR", help="folder for the grid (default: %(default)s)")
    p.add_argument("--size", type=int, metavar="PX",
                   help=f"long edge of each panel (default: {GPU_SIZE_PX} on a GPU, {CPU_SIZE_PX} on a CPU)")
    p.add_argument("--steps", type=int, help=f"steps per panel (default: {GPU_STEPS} on a GPU, {CPU_STEPS} on a CPU)")
    p.add_argument("--rows", default=",".join(ROWS), metavar="LAYERS",
                   help="the rows' deepest style layers, comma-separated (default: %(default)s)")
    p.add_argument("--ratios", metavar="R,R,...",
                   help="the columns' alpha/beta in the paper's units (default: "
                        + ",".join(f"{r:.0e}" for r in RATIOS) + ")")
    p.add_argument("--widen", type=int, metavar="N",
                   help=f"add up to N columns, a decade each, on a side where some row does not yet run from the "
                        f"painting's texture (left) to the photo (right), judged by the package's losses "
                        f"(default: {MAX_WIDEN} with the default ratios, 0 with --ratios)")
    p.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam", help="(default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace the grid's files in DIR if they exist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _decades(ratio, k):
    """`ratio` × 10^k, rounded so that 1e-8 a decade down is 1e-09 exactly."""
    return float(f"{ratio * 10.0 ** k:.6g}")


def _row(layer):
    if layer not in ROWS:
        raise StyleTransferError(f"a row is named by its deepest style layer, one of {', '.join(ROWS)}; got {layer!r}")
    return ROWS.index(layer)


def _ratios(text):
    try:
        ratios = tuple(float(r) for r in text.split(","))
    except ValueError:
        raise StyleTransferError(f"--ratios must be numbers separated by commas, got {text!r}") from None
    if not all(0 < r < float("inf") for r in ratios):
        raise StyleTransferError(f"--ratios must be positive, got {text!r}")
    return ratios


def run(argv):
    """`python -m helpers figure3 ...`; returns the exit status."""
    from .images import check_size

    args = build_parser().parse_args(argv)
    rows = tuple(r.strip() for r in args.rows.split(",") if r.strip())
    for layer in rows:
        _row(layer)
    ratios = RATIOS if args.ratios is None else _ratios(args.ratios)
    widen = args.widen if args.widen is not None else (MAX_WIDEN if args.ratios is None else 0)
    if widen < 0:
        raise StyleTransferError(f"--widen must be 0 or more, got {widen}")
    if args.size is not None:
        check_size(args.size, "--size")
    if args.steps is not None and args.steps < 1:
        raise StyleTransferError(f"--steps must be a positive whole number, got {args.steps}")
    from .images import bundled_images

    content = args.content or bundled_images("content")["city"]
    style = args.style or bundled_images("style")["starry_night"]
    for path in (content, style):
        if not Path(path).is_file():
            raise StyleTransferError(f"{path}: no such file; give a photo and a painting, or neither for the bundled pair")
    summary = make_grid(content, style, args.output, rows, ratios, args.size, args.steps, args.optimizer,
                        args.overwrite, args.quiet, widen)
    added = summary["columns_added"]
    more = f" ({added['left']} column(s) added on the left, {added['right']} on the right)" if any(added.values()) else ""
    print(f"Wrote {len(summary['panels'])} panels{more}, figure3.png and figure3.json to {args.output}/ "
          f"in {summary['seconds']:.0f} s", file=sys.stderr)
    if not summary["spans"]:
        print("Note: not every row runs from the painting's texture to the photo (see spans_rule in figure3.json); "
              "try --ratios further out, or more --steps", file=sys.stderr)
    return 0
