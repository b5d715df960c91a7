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
