"""A live preview of a run in a notebook: the current image beside the loss curves.

    preview = LivePreview()
    result = stylize(content, style, callback=preview)
    preview.finish(result)

The figure is rendered to PNG and shown once with `display(image, display_id=True)`, then
replaced in place with `handle.update(image)`: that works in Colab, JupyterLab, VS Code and
under nbval without any widget library or matplotlib backend. The figure is made without
pyplot, so the inline backend does not show it a second time when the cell ends.
"""

import io
import time

from matplotlib.figure import Figure

from .images import tensor_to_image
from .plots import plot_losses


class LivePreview:
    """A callback for `stylize` / `StyleTransfer.run` that redraws image and losses in place.

    It redraws at most every `min_interval_s` seconds (drawing costs time too) and always
    at the last step. `history` collects the losses it was shown, one dict per report.
    Outside a notebook (`display=False`, or no IPython) it only collects.
    """

    def __init__(self, title=None, min_interval_s=1.0, size_in=4.0, display=True):
        self.title = title
        self.min_interval_s = min_interval_s
        self.history = []
        self.frames = 0
        self._last_draw = None
        self.fig = Figure(figsize=(2.2 * size_in, size_in))
        self.ax_image, self.ax_losses = self.fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.15]})
        self.ax_image.axis("off")
        self._shown = None
        self.handle = None
        if display:
            try:
                from IPython.display import display as ipy_display
            except ImportError:  # plain Python: collect only
                ipy_display = None
            if ipy_display is not None:
                self.handle = ipy_display(self.png(), display_id=True)

    def __call__(self, progress):
        self.history.append(dict(progress.losses))
        now = time.perf_counter()
        due = self._last_draw is None or now - self._last_draw >= self.min_interval_s
        if due or progress.step >= progress.steps:
            eta = f", about {progress.eta_s:.0f} s to go" if progress.step < progress.steps else ""
            self.draw(progress.image, self.history,
                      f"step {progress.step}/{progress.steps}, {progress.elapsed_s:.0f} s{eta}")
            self._last_draw = time.perf_counter()

    def finish(self, result):
        """Draw the final image and the full per-step loss history of a StyleTransferResult."""
        why = f" ({result.stopped})" if result.stopped else ""
        self.draw(result.image, result.history,
                  f"done: {result.steps_done} steps in {result.seconds:.0f} s{why}")
        return result

    def draw(self, image, history, caption):
        """Show `image` (RGB in [0, 1], any device) and `history` (list of loss dicts) with a caption."""
        picture = tensor_to_image(image.detach().float().cpu())
        if self._shown is None:
            self._shown = self.ax_image.imshow(picture)
        else:
            self._shown.set_data(picture)
            self._shown.set_extent((-0.5, picture.width - 0.5, picture.height - 0.5, -0.5))
        self.ax_image.set_title(caption, fontsize=9)
        if history:
            plot_losses(history, ax=self.ax_losses)
        if self.title:
            self.fig.suptitle(self.title)
        self.fig.tight_layout()
        self.frames += 1
        if self.handle is not None:
            self.handle.update(self.png())

    def png(self, dpi=80):
        """The figure as an IPython PNG image (what the notebook shows)."""
        from IPython.display import Image

        buffer = io.BytesIO()
        self.fig.savefig(buffer, format="png", dpi=dpi)
        return Image(data=buffer.getvalue(), format="png")
