"""The loss functions against sums written out by hand on tiny tensors."""

import itertools

import torch

from helpers import content_loss, gram_matrix, style_loss, total_variation_loss


def test_gram_matrix_by_explicit_sums():
    torch.manual_seed(0)
    f = torch.randn(2, 3, 2, 4)  # a batch of two, 3 channels, 2×4 positions
    g = gram_matrix(f)
    assert g.shape == (2, 3, 3)
    n, c, h, w = f.shape
    for b, i, j in itertools.product(range(n), range(c), range(c)):
        total = sum(f[b, i, y, x] * f[b, j, y, x] for y in range(h) for x in range(w))
        assert torch.isclose(g[b, i, j], total / (c * h * w), atol=1e-6)


def test_gram_matrix_ignores_where_features_are():
    torch.manual_seed(1)
    f = torch.randn(1, 4, 3, 3)
    shuffled = f.reshape(1, 4, 9)[:, :, torch.randperm(9)].reshape(1, 4, 3, 3)
    assert torch.allclose(gram_matrix(f), gram_matrix(shuffled), atol=1e-6)


def test_gram_matrix_is_float32_for_bfloat16_features():
    f = torch.randn(1, 2, 3, 3).bfloat16()
    assert gram_matrix(f).dtype == torch.float32


def test_content_loss_is_the_mean_squared_difference():
    a = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    b = torch.tensor([[[[1.0, 0.0], [3.0, 7.0]]]])
    # (0² + 2² + 0² + 3²) / 4 = 13 / 4
    assert content_loss(a, b).item() == 13 / 4
    assert content_loss(a, a).item() == 0


def test_style_loss_weights_each_layer():
    torch.manual_seed(2)
    feats = {"a": torch.randn(1, 2, 3, 3), "b": torch.randn(1, 3, 2, 2)}
    others = {"a": torch.randn(1, 2, 3, 3), "b": torch.randn(1, 3, 2, 2)}
    targets = {k: gram_matrix(v) for k, v in others.items()}

    def layer_error(name):
        g, t = gram_matrix(feats[name])[0], targets[name][0]
        c = g.shape[0]
        return sum((g[i, j] - t[i, j]) ** 2 for i in range(c) for j in range(c)) / c**2

    expected = 0.3 * layer_error("a") + 2.0 * layer_error("b")
    got = style_loss(feats, targets, {"a": 0.3, "b": 2.0})
    assert torch.isclose(got, expected, rtol=1e-5)
    equal = style_loss(feats, targets)
    assert torch.isclose(equal, (layer_error("a") + layer_error("b")) / 2, rtol=1e-5)
    assert style_loss(others, targets).item() < 1e-10


def test_total_variation_by_hand():
    x = torch.tensor([[[[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]]]])  # 1 channel, 2×3
    # horizontal differences: (1, 0), (0, 1) -> squares 1, 0, 0, 1 -> mean 0.5
    # vertical differences: (0, -1, 0) -> squares 0, 1, 0 -> mean 1/3
    assert abs(total_variation_loss(x).item() - (0.5 + 1 / 3)) < 1e-6
    assert total_variation_loss(torch.ones(1, 3, 5, 5)).item() == 0


def test_the_engines_fast_gram_matrix_is_the_reference_one():
    """speed.fast_gram_matrix (the engine's) gives gram_matrix's values and gradients, for
    channels-last features as the engine has them and for bfloat16 ones (float32 out)."""
    from helpers.speed import fast_gram_matrix

    f = torch.randn(2, 5, 6, 7).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    g_ref = gram_matrix(f)
    weights = torch.randn_like(g_ref)
    (grad_ref,) = torch.autograd.grad((g_ref * weights).sum(), f)
    g_fast = fast_gram_matrix(f)
    (grad_fast,) = torch.autograd.grad((g_fast * weights).sum(), f)
    assert torch.allclose(g_fast, g_ref, rtol=1e-5, atol=1e-6)
    assert torch.allclose(grad_fast, grad_ref, rtol=1e-5, atol=1e-6)
    low = f.detach().bfloat16()
    assert fast_gram_matrix(low).dtype == torch.float32
    assert torch.allclose(fast_gram_matrix(low), gram_matrix(low), rtol=1e-5, atol=1e-6)


def test_the_loss_object_weights_its_terms_and_reads_weights_at_each_call():
    """StyleTransferLoss: total = the three weighted terms; a changed weight takes effect on the
    next call; content weight 0 gives a content term of 0 without content features."""
    from helpers.config import StyleTransferConfig
    from helpers.losses import StyleTransferLoss

    torch.manual_seed(0)
    feats = {"relu1_1": torch.rand(1, 4, 6, 6), "relu4_2": torch.rand(1, 8, 3, 3)}
    target = {"relu4_2": torch.rand(1, 8, 3, 3)}
    grams = {"relu1_1": gram_matrix(torch.rand(1, 4, 5, 5))}
    loss = StyleTransferLoss(grams, target)
    image = torch.rand(1, 3, 8, 8)
    config = StyleTransferConfig(style_layers=("relu1_1",), content_layers=("relu4_2",),
                                 content_weight=2.0, style_weight=3.0, tv_weight=0.5)
    t = loss(feats, image, config)
    assert torch.allclose(t["total"], t["content"] + t["style"] + t["tv"])
    norm_p = 1 / target["relu4_2"].pow(2).mean()
    assert torch.allclose(t["content"], 2.0 * norm_p * content_loss(feats["relu4_2"], target["relu4_2"]), rtol=1e-5)
    norm_a = 1 / grams["relu1_1"].pow(2).mean()
    want_style = 3.0 * norm_a * (gram_matrix(feats["relu1_1"]) - grams["relu1_1"]).pow(2).mean()
    assert torch.allclose(t["style"], want_style, rtol=1e-5)
    assert torch.allclose(t["tv"], 0.5 * total_variation_loss(image))
    doubled = loss(feats, image, config.replace(style_weight=6.0))
    assert torch.allclose(doubled["style"], 2 * t["style"])
    texture = loss({"relu1_1": feats["relu1_1"]}, image, config.replace(content_weight=0.0))
    assert texture["content"].item() == 0.0
