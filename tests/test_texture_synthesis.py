"""Texture synthesis (notebook 03): the engine with content_weight=0 and init="noise"."""

import torch

import helpers
from helpers.network import load_vgg19


class SpyModel(torch.nn.Module):
    """A random VGG-19 that records which layers every forward pass asked for."""

    def __init__(self):
        super().__init__()
        self.inner = load_vgg19("random")
        self.asked = []

    def forward(self, image, layers):
        self.asked.append(sorted(layers))
        return self.inner(image, layers)


def noise_image(seed, h=40, w=40):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_content_weight_zero_skips_the_content_layers_and_matches_style():
    torch.manual_seed(0)
    model = SpyModel()
    style = noise_image(1)
    engine = helpers.StyleTransfer(style, style, size_px=40, content_weight=0, tv_weight=0, init="noise",
                                   style_layers=("relu1_1", "relu2_1"), learning_rate=0.05, model=model,
                                   precision="float32")
    model.asked.clear()
    result = engine.run(30)
    # Only the style layers are computed during the run: the forward pass stops at relu2_1.
    assert model.asked and all(asked == ["relu1_1", "relu2_1"] for asked in model.asked)
    assert all(h["content"] == 0 and h["tv"] == 0 for h in result.history)
    assert result.history[-1]["style"] < 0.5 * result.history[0]["style"]
    # The start was the seeded noise, not the "content" image (which only sets the size).
    start = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(start, style)
    first = helpers.StyleTransfer(style, style, size_px=40, content_weight=0, init="noise", model=model)
    assert torch.equal(first.image.detach().cpu(), start)


def test_content_weight_back_above_zero_brings_the_content_term_back():
    model = SpyModel()
    content, style = noise_image(2), noise_image(3)
    engine = helpers.StyleTransfer(content, style, size_px=40, content_weight=0, init="noise",
                                   style_layers=("relu1_1",), model=model, precision="float32")
    assert engine.losses(engine.image)["content"].item() == 0
    engine.update(content_weight=1)
    model.asked.clear()
    terms = engine.losses(engine.image)
    assert model.asked == [["relu1_1", "relu4_2"]]
    assert terms["content"].item() > 0
