"""LivePreview: a callback that redraws the current image and the loss curves in place."""

import numpy as np
import torch

import helpers
from helpers.progress import Progress
from helpers.preview import LivePreview


class FakeHandle:
    """Stands in for IPython's DisplayHandle: records what update() was given."""

    def __init__(self):
        self.updates = []

    def update(self, obj):
        self.updates.append(obj)


def progress(step, steps, image, total=1.0):
    losses = {"step": step, "content": total / 2, "style": total / 4, "tv": total / 4, "total": total}
    return Progress(step, steps, losses, image, elapsed_s=0.1 * step, seconds_per_step=0.1)


def test_draws_the_image_it_is_given_and_updates_the_handle():
    preview = LivePreview(display=False, min_interval_s=0)
    preview.handle = FakeHandle()
    red = torch.zeros(1, 3, 6, 8)
    red[:, 0] = 1
    preview(progress(1, 2, red))
    blue = torch.zeros(1, 3, 10, 4)
    blue[:, 2] = 1
    preview(progress(2, 2, blue, total=0.5))
    assert preview.frames == 2 and len(preview.handle.updates) == 2
    assert preview.handle.updates[-1].data[:8] == b"\x89PNG\r\n\x1a\n"
    shown = np.asarray(preview.ax_image.get_images()[0].get_array())
    assert shown.shape == (10, 4, 3) and (shown[..., 2] == 255).all() and (shown[..., 0] == 0).all()
    assert "step 2/2" in preview.ax_image.get_title()
    assert [h["total"] for h in preview.history] == [1.0, 0.5]
    labels = [line.get_label() for line in preview.ax_losses.get_lines()]
    assert labels == ["total", "content", "style", "tv"]
    assert list(preview.ax_losses.get_lines()[0].get_ydata()) == [1.0, 0.5]


def test_throttles_redraws_but_always_draws_the_last_step():
    preview = LivePreview(display=False, min_interval_s=1e9)
    image = torch.rand(1, 3, 4, 4)
    for step in range(1, 11):
        preview(progress(step, 10, image))
    assert preview.frames == 2  # the first report and the last
    assert len(preview.history) == 10


def test_follows_a_real_run_and_finish_shows_the_whole_history():
    content = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(0))
    style = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    preview = LivePreview(display=False, min_interval_s=0)
    result = helpers.stylize(content, style, size_px=40, steps=6, report_every=2, weights="random",
                             callback=preview)
    assert [h["step"] for h in preview.history] == [2, 4, 6]
    assert preview.frames == 3
    preview.finish(result)
    assert preview.frames == 4
    assert "done: 6 steps" in preview.ax_image.get_title()
    assert len(preview.ax_losses.get_lines()[0].get_xdata()) == 6
    shown = np.asarray(preview.ax_image.get_images()[0].get_array())
    expected = np.asarray(helpers.tensor_to_image(result.image))
    assert np.array_equal(shown, expected)


def test_shows_itself_once_through_ipython_display(monkeypatch):
    import IPython.display

    shown = []

    def fake_display(obj, display_id=None):
        shown.append((obj, display_id))
        return FakeHandle()

    monkeypatch.setattr(IPython.display, "display", fake_display)
    preview = LivePreview(min_interval_s=0)
    assert len(shown) == 1 and shown[0][1] is True and shown[0][0].data.startswith(b"\x89PNG")
    preview(progress(1, 1, torch.rand(1, 3, 4, 4)))
    assert len(preview.handle.updates) == 1
    # The figure is not pyplot's, so the inline backend will not show it again at the cell's end.
    import matplotlib.pyplot as plt
    assert all(plt.figure(n) is not preview.fig for n in plt.get_fignums())
