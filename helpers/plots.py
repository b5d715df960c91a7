"""Pictures: image grids, feature maps, Gram matrices and loss curves with matplotlib.

In a notebook, the figures made of pictures (image grids, feature maps, Gram heatmaps) are
shown as JPEG by `show_figure`: a photograph stored as PNG takes about ten times the bytes,
and notebooks full of PNGs grow too large for GitHub's viewer and open slowly on Colab.
Line plots (loss curves) stay PNG, where JPEG would blur their thin lines. Outside a notebook
(scripts, tests) every function just returns its figure.
"""

import io
import math

import matplotlib.pyplot as plt
import torch
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from .images import tensor_to_image

JPEG_QUALITY = 85  #: for figures of pictures in notebooks: no visible loss, a tenth of PNG's bytes


def _notebook_shell():
    """The running IPython kernel's shell, or None outside a notebook (scripts, tests, a terminal IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


def _skip_figures_shown_as_jpeg(shell):
    """Make the notebook's PNG formatter skip figures already shown as JPEG.

    Otherwise a figure returned as a cell's last value would be shown a second time, as PNG.
    """
    formatter = shell.display_formatter.formatters["image/png"]
    try:
        previous = formatter.lookup_by_type(Figure)
    except KeyError:
        return
    if getattr(previous, "skips_jpeg_figures", False):
        return

    def png_unless_shown(fig, *args, **kwargs):
        return None if getattr(fig, "shown_as_jpeg", False) else previous(fig, *args, **kwargs)

    png_unless_shown.skips_jpeg_figures = True
    formatter.for_type(Figure, png_unless_shown)


def show_figure(fig, quality=JPEG_QUALITY):
    """In a notebook, show `fig` now as a JPEG image and close it; elsewhere do nothing. Returns `fig`.

    Use it for figures of photographs, paintings and feature maps: the notebook then stores
    JPEG bytes (quality 85 by default) instead of a PNG about ten times larger.
    """
    shell = _notebook_shell()
    if shell is None:
        return fig
    from IPython.display import Image, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", bbox_inches="tight", pil_kwargs={"quality": quality})
    display(Image(data=buffer.getvalue(), format="jpeg"))
    fig.shown_as_jpeg = True
    _skip_figures_shown_as_jpeg(shell)
    plt.close(fig)
    return fig


def show_images(images, titles=None, columns=None, size_in=3.5, suptitle=None):
    """Draw image tensors (RGB in [0, 1]) or PIL images side by side; return the figure.

    `columns` defaults to all in one row (at most 4, then wrapping).
    """
    images = list(images)
    titles = list(titles) if titles is not None else [None] * len(images)
    columns = columns or min(len(images), 4)
    rows = math.ceil(len(images) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(size_in * columns, size_in * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles):
        ax.imshow(image if not isinstance(image, torch.Tensor) else tensor_to_image(image))
        if title:
            ax.set_title(title, fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return show_figure(fig)


def show_feature_maps(activation, channels=8, title=None, size_in=1.6, cmap="viridis"):
    """Draw the first `channels` channels (or the given channel indices) of one activation (1, C, H, W)."""
    a = activation.detach().float().cpu()[0]
    indices = list(range(min(channels, a.shape[0]))) if isinstance(channels, int) else list(channels)
    fig, axes = plt.subplots(1, len(indices), figsize=(size_in * len(indices), size_in * 1.15), squeeze=False)
    for ax, c in zip(axes[0], indices):
        ax.imshow(a[c], cmap=cmap)
        ax.set_title(f"channel {c}", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return show_figure(fig)


def show_feature_grid(features, channels=6, size_in=1.5, cmap="viridis", title=None):
    """Draw several layers' feature maps in one figure: one row per layer.

    `features` maps layer names to activations (1, C, H, W). `channels` is how many to draw
    per layer, the ones that vary most across positions first, or {name: [indices]}.
    Each map has its own colour scale; the row label gives the layer and the map's size.
    """
    rows = {}
    for name, activation in features.items():
        a = activation.detach().float().cpu()[0]
        if isinstance(channels, dict):
            chosen = list(channels[name])
        else:
            chosen = a.flatten(1).std(dim=1).argsort(descending=True)[:channels].tolist()
        rows[name] = (a, chosen)
    columns = max(len(chosen) for _, chosen in rows.values())
    aspect = max(a.shape[1] / a.shape[2] for a, _ in rows.values())  # height / width of a map
    height = len(rows) * (size_in * aspect + 0.25) + (0.3 if title else 0)
    fig, axes = plt.subplots(len(rows), columns, figsize=(size_in * columns, height), squeeze=False)
    for ax_row, (name, (a, chosen)) in zip(axes, rows.items()):
        for ax in ax_row:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_frame_on(False)
        for ax, c in zip(ax_row, chosen):
            ax.imshow(a[c].numpy(), cmap=cmap)
            ax.set_title(f"channel {c}", fontsize=7)
        ax_row[0].set_ylabel(f"{name}\n{a.shape[1]}×{a.shape[2]}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return show_figure(fig)


def show_gram(gram, title="Gram matrix", ax=None, cmap="magma", log=True, vmax=None):
    """Draw one Gram matrix ((C, C) or (1, C, C)) as a heatmap with a colour bar.

    `log=True` (the default) uses a logarithmic colour scale over four decades below the
    top of the scale: Gram entries span orders of magnitude, and on a linear scale a few strong
    channels leave the rest black. Entries below that range (and zeros) get the darkest colour.
    `vmax`, the top of the scale, is the matrix's largest entry by default: give two heatmaps the
    same `vmax` to compare them on one scale.
    Given `ax`, it draws there and leaves showing the figure to the caller (`show_figure`).
    """
    g = gram.detach().float().cpu()
    g = g[0] if g.dim() == 3 else g
    own_figure = ax is None
    if own_figure:
        fig, ax = plt.subplots(figsize=(4.2, 3.6))
    else:
        fig = ax.figure
    top = g.max().item() if vmax is None else float(vmax)
    if log and top > 0:
        norm = LogNorm(vmin=top * 1e-4, vmax=top, clip=True)
        im = ax.imshow(g.clamp(min=top * 1e-4), cmap=cmap, norm=norm)
    else:
        im = ax.imshow(g, cmap=cmap, vmin=0 if vmax is not None else None, vmax=vmax)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("channel j")
    ax.set_ylabel("channel i")
    bar = fig.colorbar(im, ax=ax, fraction=0.046)
    if log and top > 0:
        bar.set_label("log scale", fontsize=8)
    return show_figure(fig) if own_figure else fig


def plot_losses(history, ax=None, title="losses (weighted)"):
    """Draw the loss history of a run (a list of dicts from StyleTransferResult.history), log scale."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    else:
        fig = ax.figure
    ax.clear()
    steps = [h["step"] for h in history]
    for key in ("total", "content", "style", "tv"):
        values = [h[key] for h in history]
        if any(v > 0 for v in values):
            ax.plot(steps, values, label=key, lw=2 if key == "total" else 1.2)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
