"""The checkers of notebooks 03 and 04: ✓ for right answers, a ✗ that names the slip for wrong ones.

The "right" answers here are written independently of helpers.losses (loops and
einsum), so a checker that compared against a wrong reference would fail.
"""

import pytest
import torch

from helpers import exercises


def run_checker(capsys, checker, *args):
    ok = checker(*args)
    out = capsys.readouterr().out
    return ok, out


def assert_names_the_slip(capsys, checker, wrong, says, fault_only=False):
    """The checker says ✗ (and does not raise) for `wrong`, with `says` in its message if given;
    with `fault_only` (notebook 03's checkers) the message names the fault, not the fix."""
    ok, out = run_checker(capsys, checker, wrong)
    assert not ok and out.startswith("✗"), out
    if says:
        assert says in out, out
    # Messages about the form of an answer (a tensor, one number), which the exercise's text
    # states, may say what form to give; every other ✗ of notebook 03's names the fault only.
    if fault_only and not out.startswith(("✗ give ", "✗ return ", "✗ your function raised")):
        from tests.test_notebook_files import FIX_CLAUSE

        assert not FIX_CLAUSE.search(out.lstrip("✗ ")), f"the message says what to do: {out}"


# --- check_gram_matrix -------------------------------------------------------------------


def gram_by_loops(features):
    n, c, h, w = features.shape
    out = torch.zeros(n, c, c)
    for b in range(n):
        for i in range(c):
            for j in range(c):
                out[b, i, j] = (features[b, i] * features[b, j]).sum() / (c * h * w)
    return out


def gram_einsum(features):
    n, c, h, w = features.shape
    return torch.einsum("nihw,njhw->nij", features, features) / (c * h * w)


def test_gram_by_loops_matches_a_hand_computed_toy():
    # 2 channels × 1×2 positions: channel 0 = (1, 2), channel 1 = (3, 4); C·H·W = 4.
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4
    assert torch.allclose(gram_by_loops(f), expected)


def test_gram_checker_accepts_right_answer(capsys):
    ok, out = run_checker(capsys, exercises.check_gram_matrix, gram_einsum)
    assert ok and out.startswith("✓")


@pytest.mark.parametrize("wrong, says", [
    (lambda f: torch.einsum("nihw,njhw->nij", f, f), "not normalized"),
    (lambda f: torch.einsum("nihw,njhw->nij", f, f) / (f.shape[2] * f.shape[3]), "by the positions alone"),
    (lambda f: f.flatten(2).transpose(1, 2) @ f.flatten(2) / f[0].numel(), "positions × positions"),
    (lambda f: gram_einsum(f)[0], "batch dimension is lost"),
    (lambda f: torch.zeros(f.shape[0], f.shape[1], f.shape[1]), "differ from gram_matrix's"),  # a stub
    (lambda f: (lambda x: x @ x.T)(f.transpose(0, 1).reshape(f.shape[1], -1)) / f[0].numel(), None),
    (lambda f: gram_einsum(f).detach(), "no gradient"),
    (lambda f: f.numpy(), "raised"),
    (lambda f: None, "return a tensor"),
])
def test_gram_checker_names_the_slip(capsys, wrong, says):
    assert_names_the_slip(capsys, exercises.check_gram_matrix, wrong, says, fault_only=True)


def test_gram_checker_detects_mixed_batch(capsys):
    def mixed(f):  # all images of the batch flattened together: (C, N·H·W)
        x = f.transpose(0, 1).reshape(f.shape[1], -1)
        return (x @ x.T / f[0].numel()).unsqueeze(0).expand(f.shape[0], -1, -1)

    ok, out = run_checker(capsys, exercises.check_gram_matrix, mixed)
    assert not ok and out.startswith("✗")


# --- check_layer_style_loss ------------------------------------------------------------


def layer_style_loss(features, target_gram):
    c = features.shape[1]
    return ((gram_by_loops_autograd(features) - target_gram) ** 2).sum() / (c * c)


def gram_by_loops_autograd(features):
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return torch.einsum("nik,njk->nij", flat, flat) / (c * h * w)


def test_layer_style_loss_checker_accepts_right_answer(capsys):
    ok, out = run_checker(capsys, exercises.check_layer_style_loss, layer_style_loss)
    assert ok and out.startswith("✓")


@pytest.mark.parametrize("wrong, says", [
    (lambda f, a: ((gram_einsum(f) - a) ** 2).sum(), "9 times E_l"),
    (lambda f, a: ((torch.einsum("nihw,njhw->nij", f, f) - a) ** 2).mean(), "raw F·Fᵀ"),
    (lambda f, a: torch.zeros(()), "expected"),  # a stub
    (lambda f, a: (gram_einsum(f) - a).abs().mean(), "absolute differences"),
    (lambda f, a: ((gram_einsum(f) - a) ** 2).mean().sqrt(), "square root"),
    (lambda f, a: ((gram_einsum(f) - a) ** 2).mean().item(), "return a tensor"),
    (lambda f, a: ((gram_einsum(f) - a) ** 2).mean(dim=(1, 2)).unsqueeze(0), "one number"),
    (lambda f, a: ((f - a) ** 2).mean(), None),
])
def test_layer_style_loss_checker_names_the_slip(capsys, wrong, says):
    assert_names_the_slip(capsys, exercises.check_layer_style_loss, wrong, says, fault_only=True)


# --- check_total_variation_loss ---------------------------------------------------------


def tv_by_loops(image):
    _, c, h, w = image.shape
    dx = sum((image[0, k, i, j + 1] - image[0, k, i, j]) ** 2 for k in range(c) for i in range(h) for j in range(w - 1))
    dy = sum((image[0, k, i + 1, j] - image[0, k, i, j]) ** 2 for k in range(c) for i in range(h - 1) for j in range(w))
    return dx / (c * h * (w - 1)) + dy / (c * (h - 1) * w)


def test_tv_checker_accepts_right_answer(capsys):
    ok, out = run_checker(capsys, exercises.check_total_variation_loss, tv_by_loops)
    assert ok and out.startswith("✓")


@pytest.mark.parametrize("wrong, says", [
    (lambda x: (x.diff(dim=-1) ** 2).sum() + (x.diff(dim=-2) ** 2).sum(), "sums"),
    (lambda x: x.diff(dim=-1).abs().mean() + x.diff(dim=-2).abs().mean(), "absolute values"),
    (lambda x: (x.diff(dim=-1) ** 2).mean(), "vertical ones are missing"),
    (lambda x: (x.diff(dim=-2) ** 2).mean(), "add the horizontal term"),
    (lambda x: ((x.roll(-1, -1) - x) ** 2).mean() + ((x.roll(-1, -2) - x) ** 2).mean(), "wrap around"),
    (lambda x: ((x.diff(dim=-1) ** 2).mean() + (x.diff(dim=-2) ** 2).mean()) / 2, "do not average"),
    (lambda x: 1 / 0, "ZeroDivisionError"),
])
def test_tv_checker_names_the_slip(capsys, wrong, says):
    assert_names_the_slip(capsys, exercises.check_total_variation_loss, wrong, says)


# --- check_time_estimate ----------------------------------------------------------------


def test_time_estimate_checker(capsys):
    # 0.5 s per step at 256 px; 512 px has 4× the pixels: 1000 steps take 2000 s.
    ok, out = run_checker(capsys, exercises.check_time_estimate, 2000, 0.5, 1000, 512, 256)
    assert ok and "2000 s" in out
    ok, out = run_checker(capsys, exercises.check_time_estimate, 1900.0, 0.5, 1000, 512, 256)
    assert ok
    for answer, says in [(1000, "the side"), (500, "time at 256 px"), (2, "multiply by 1000"),
                         (33.3, "minutes"), (123, "is not it"), ("soon", "one number")]:
        ok, out = run_checker(capsys, exercises.check_time_estimate, answer, 0.5, 1000, 512, 256)
        assert not ok and out.startswith("✗") and says in out, (answer, out)


# --- check_optimization_loop (notebook 04) --------------------------------------------------


def loop_right(model, content, total_loss, steps, learning_rate):
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=learning_rate)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = total_loss(image)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            image.clamp_(0, 1)
    return image


def _loop(*, network=False, zero_grad=True, clamp=True, in_place=False, detach=False, steps_off=0):
    """The right loop with one slip switched on."""
    def fn(model, content, total_loss, steps, learning_rate):
        image = content if in_place else content.clone()
        image.requires_grad_(True)
        optimizer = torch.optim.Adam(model.parameters() if network else [image], lr=learning_rate)
        for _ in range(steps + steps_off):
            if zero_grad:
                optimizer.zero_grad()
            loss = total_loss(image)
            if detach:
                loss = loss.detach()
            loss.backward()
            optimizer.step()
            if clamp:
                with torch.no_grad():
                    image.clamp_(0, 1)
        return image
    return fn


def test_the_right_loop_passes(capsys):
    ok, out = run_checker(capsys, exercises.check_optimization_loop, loop_right)
    assert ok and out.startswith("✓"), out


@pytest.mark.parametrize("slip,says", [
    ({"network": True}, "network's weights changed"),
    ({"zero_grad": False}, "gradients add up"),
    ({"clamp": False}, "outside [0, 1]"),
    ({"in_place": True}, "photo itself was changed"),
    ({"detach": True}, "no gradient with respect to the image"),
    ({"steps_off": 2}, "called 10 times for 8 steps"),
])
def test_the_loop_checker_names_each_slip(capsys, slip, says):
    assert_names_the_slip(capsys, exercises.check_optimization_loop, _loop(**slip), says, fault_only=True)
