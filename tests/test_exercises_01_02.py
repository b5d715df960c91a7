"""The checkers of notebooks 01 and 02 say ✓ to a right answer and ✗ to a wrong one.

A ✗ names what is wrong with the answer, in one line, without the code or steps that fix it
(the notebooks keep those in a collapsed Solution block): `said` checks that no clause of the
message starts with an instruction such as "divide", "flip" or "subtract".

Every right answer here is computed independently of the helpers the checkers use: the
preprocessing pixel by pixel, shapes by a forward pass, the receptive field from the
gradient of one activation, the content loss with torch.nn.functional.mse_loss.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import exercises, load_vgg19
from tests.test_notebook_files import FIX_CLAUSE

# Messages about the form of an answer (a number, a tensor), which the exercise's text states,
# may say what form to give; every other ✗ names the fault only.
FORM = ("✗ give ", "✗ return ", "✗ your function raised")


def said(capsys, result, mark):
    out = capsys.readouterr().out
    assert out.startswith(mark), out
    assert out.count("\n") == 1, out  # one line, whatever the answer
    if mark == "✗" and not out.startswith(FORM):
        assert not FIX_CLAUSE.search(out.lstrip("✗ ")), f"the message says what to do: {out}"
    assert result is (mark == "✓")
    return out


# --- check_caffe_preprocess ----------------------------------------------------------------


def caffe_by_hand(rgb):
    """BGR order, 0..255, minus the Caffe means B 103.939, G 116.779, R 123.68, written out."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    return torch.cat([b * 255 - 103.939, g * 255 - 116.779, r * 255 - 123.68], dim=1)


def test_caffe_preprocess_right(capsys):
    said(capsys, exercises.check_caffe_preprocess(caffe_by_hand), "✓")


@pytest.mark.parametrize("wrong, words", [
    (lambda rgb: (rgb - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
     / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), ""),
    (lambda rgb: caffe_by_hand(rgb).flip(1), ""),  # the right numbers, back in RGB order
    (lambda rgb: caffe_by_hand(rgb.flip(1)), "R, G, B order"),  # forgot the flip
    (lambda rgb: caffe_by_hand(rgb) + torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1), "mean"),
    (lambda rgb: rgb * 255, "channel order and the mean are still off"),  # the notebook's starter
    (lambda rgb: rgb.flip(1) * 255, "mean is not subtracted"),
    (lambda rgb: rgb.sub_(0.5), ""),  # changes its input
    (lambda rgb: caffe_by_hand(rgb)[:, :, :1], "shape"),
    (lambda rgb: caffe_by_hand(rgb).tolist(), "tensor"),
    (lambda rgb: undefined_name, "NameError"),  # noqa: F821
])
def test_caffe_preprocess_wrong(capsys, wrong, words):
    out = said(capsys, exercises.check_caffe_preprocess(wrong), "✗")
    assert words in out


# --- check_feature_shape ------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_vgg():
    return load_vgg19("random")


@pytest.mark.parametrize("layer, height, width", [("relu4_2", 300, 200), ("conv5_1", 97, 64), ("relu1_1", 40, 50)])
def test_feature_shape_right_matches_a_forward_pass(capsys, random_vgg, layer, height, width):
    with torch.no_grad():
        shape = tuple(random_vgg(torch.zeros(1, 3, height, width), [layer])[layer].shape[1:])
    said(capsys, exercises.check_feature_shape(shape, layer, height, width), "✓")
    said(capsys, exercises.check_feature_shape(list(shape), layer, height, width), "✓")


@pytest.mark.parametrize("answer, words", [
    ((512, 38, 25), "rounded up"),
    ((512, 25, 37), "swapped"),
    ((256, 37, 25), "channels"),
    ((512, 75, 50), "75×50 is the size after 2 poolings"),
    ((512, 150, 100), "150×100 is the size after 1 pooling:"),  # the notebook's starter
    ((512, 37, 24), "not the size after any number of poolings"),
    ((37, 25), "three whole numbers"),
    ("512x37x25", "three whole numbers"),
    ((512, 37.5, 25), "three whole numbers"),
])
def test_feature_shape_wrong(capsys, answer, words):
    out = said(capsys, exercises.check_feature_shape(answer, "relu4_2", 300, 200), "✗")
    assert words in out


# --- check_receptive_field -----------------------------------------------------------------


@pytest.fixture(scope="module")
def positive_avg_vgg():
    """All weights positive and average pooling (the same 2×2 windows as max pooling), so no
    ReLU is dead and no pooling hides a pixel: every pixel in the field gets a gradient."""
    model = load_vgg19("random", pooling="avg")
    for module in model.features:
        if isinstance(module, nn.Conv2d):
            nn.init.constant_(module.weight, 0.01)
            nn.init.constant_(module.bias, 0.1)
    return model


def measured_receptive_field(model, layer, size=256):
    """The side of the input region that moves one central activation of `layer`."""
    image = torch.full((1, 3, size, size), 0.5, requires_grad=True)
    activation = model(image, [layer])[layer]
    h, w = activation.shape[-2:]
    activation[0, 0, h // 2, w // 2].backward()
    rows = (image.grad[0].abs().sum(dim=(0, 2)) > 0).nonzero().flatten()
    assert 0 < rows[0] and rows[-1] < size - 1, "the field reaches the border: use a larger image"
    return int(rows[-1] - rows[0] + 1)


@pytest.mark.parametrize("layer", ["conv1_1", "relu2_1", "relu4_2"])
def test_receptive_field_right_matches_the_gradient(capsys, positive_avg_vgg, layer):
    answer = measured_receptive_field(positive_avg_vgg, layer)
    said(capsys, exercises.check_receptive_field(answer, layer), "✓")


@pytest.mark.parametrize("answer, words", [
    (21, "+2 px"),  # one 3×3 conv = +2, ten convs, as if there were no pooling
    (77, "added nothing to the field"),  # the poolings double jump but do not widen the field
    (50, "too small"),
    (500, "too large"),
    ("84", "whole number"),
    (84.5, "whole number"),
])
def test_receptive_field_wrong(capsys, answer, words):
    out = said(capsys, exercises.check_receptive_field(answer, "relu4_2"), "✗")
    assert words in out


# --- check_content_loss --------------------------------------------------------------------


def test_content_loss_right(capsys):
    said(capsys, exercises.check_content_loss(lambda f, p: F.mse_loss(f, p)), "✓")
    said(capsys, exercises.check_content_loss(lambda f, p: ((f - p) ** 2).sum() / f.numel()), "✓")


@pytest.mark.parametrize("wrong, words", [
    (lambda f, p: ((f - p) ** 2).sum(), "sum of the squares, 60 times"),
    (lambda f, p: 0.5 * ((f - p) ** 2).sum(), "½"),
    (lambda f, p: 0.5 * F.mse_loss(f, p), "half"),
    (lambda f, p: (f - p).mean(), "unsquared"),
    (lambda f, p: F.l1_loss(f, p), "absolute"),
    (lambda f, p: F.mse_loss(f, p).sqrt(), "square root"),
    (lambda f, p: F.mse_loss(f, p).item(), "return a tensor"),
    (lambda f, p: F.mse_loss(f, p, reduction="none"), "one number"),
    (lambda f, p: F.mse_loss(f.detach(), p), "no gradient"),
    (lambda f, p: torch.tensor(0.0), "expected"),
    (lambda f, p: f.missing_method(), "AttributeError"),
])
def test_content_loss_wrong(capsys, wrong, words):
    out = said(capsys, exercises.check_content_loss(wrong), "✗")
    assert words in out


# --- check_content_loss_value --------------------------------------------------------------

FEATURES = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
TARGET = torch.tensor([[1.0, 0.0], [0.0, 2.0]]).view(1, 1, 2, 2)
# differences 0, 2, 3, 2; squares 0, 4, 9, 4; sum 17; mean 17 / 4


def test_content_loss_value_right(capsys):
    said(capsys, exercises.check_content_loss_value(4.25, FEATURES, TARGET), "✓")
    said(capsys, exercises.check_content_loss_value(torch.tensor(4.25), FEATURES, TARGET), "✓")


@pytest.mark.parametrize("answer, words", [(17, "sum of the squared"), (8.5, "½"), (1.75, "unsquared"),
                                           (0, "F and P are equal"), (4.0, "not the mean of the squared"),
                                           ("4.25", "one number")])
def test_content_loss_value_wrong(capsys, answer, words):
    out = said(capsys, exercises.check_content_loss_value(answer, FEATURES, TARGET), "✗")
    assert words in out


# --- show_feature_grid (notebook 01's picture of feature maps) ---------------------------------


def test_show_feature_grid_one_row_per_layer_most_varied_channels_first():
    import matplotlib

    matplotlib.use("Agg")
    from helpers.plots import show_feature_grid

    flat = torch.zeros(1, 4, 6, 6)
    flat[0, 2, :3] = 5.0  # channel 2 varies most, then channel 0
    flat[0, 0, :3] = 1.0
    fig = show_feature_grid({"relu1_1": flat, "relu2_1": torch.rand(1, 3, 3, 3)}, channels=2)
    axes = fig.axes
    assert len(axes) == 4
    assert [axes[0].get_title(), axes[1].get_title()] == ["channel 2", "channel 0"]
    assert axes[0].get_ylabel() == "relu1_1\n6×6" and axes[2].get_ylabel().startswith("relu2_1")
    fig = show_feature_grid({"relu1_1": flat}, channels={"relu1_1": [3]})
    assert [ax.get_title() for ax in fig.axes] == ["channel 3"]
