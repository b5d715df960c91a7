"""The checkers of notebook 07 say ✓ to a right answer and ✗, with the right hint, to a wrong one."""

import torch

from helpers import exercises
from helpers.realtime import flicker


def _instance_norm(x, dims=(2, 3), unbiased=False, eps=1e-5):
    return (x - x.mean(dim=dims, keepdim=True)) / (x.var(dim=dims, keepdim=True, unbiased=unbiased) + eps).sqrt()


def test_instance_norm_right_answers_pass(capsys):
    assert exercises.check_instance_norm(_instance_norm)
    assert exercises.check_instance_norm(lambda x: torch.nn.InstanceNorm2d(x.shape[1])(x))
    assert "✓" in capsys.readouterr().out


def test_instance_norm_slips_are_named(capsys):
    cases = [
        (lambda x: _instance_norm(x, dims=(0, 2, 3)), "batch normalization"),
        (lambda x: _instance_norm(x, dims=(1, 2, 3)), "layer normalization"),
        (lambda x: _instance_norm(x, unbiased=True), "biased variance"),
        (lambda x: _instance_norm(x, eps=0.0), "eps is missing"),
        (lambda x: x - x.mean(dim=(2, 3), keepdim=True), "keeps its own spread"),
        (lambda x: x.mean(dim=(2, 3)), "keep the input's shape"),
        (lambda x: 1 / 0, "ZeroDivisionError"),
    ]
    for fn, hint in cases:
        assert not exercises.check_instance_norm(fn)
        out = capsys.readouterr().out
        assert "✗" in out and hint in out, (hint, out)


def test_flicker_right_answer_passes(capsys):
    assert exercises.check_flicker(flicker)
    assert "✓" in capsys.readouterr().out


def test_flicker_slips_are_named(capsys):
    def pairs(frames):
        return list(zip(frames, frames[1:]))

    cases = [
        (lambda fr, s: 255 * sum((b - a).abs().mean().item() for a, b in pairs(fr)) / len(pairs(fr)),
         "compared frames as they are"),
        (lambda fr, s: 255 * sum((b[..., s:] - a[..., :-s]).abs().mean().item() for a, b in pairs(fr)) / len(pairs(fr)),
         "the other way"),
        (lambda fr, s: flicker(fr, s) / 255, "not in 0..255 levels"),
        (lambda fr, s: "a lot", "not a number"),
    ]
    for fn, hint in cases:
        assert not exercises.check_flicker(fn)
        out = capsys.readouterr().out
        assert "✗" in out and hint in out, (hint, out)


def test_a_perfect_pan_has_no_flicker_and_noise_has_some():
    strip = torch.rand(1, 3, 10, 30)
    frames = [strip[..., 2 * t:2 * t + 20] for t in range(5)]
    assert flicker(frames, 2) == 0
    noisy = [f + 0.1 * torch.randn_like(f) for f in frames]
    assert flicker(noisy, 2) > 5
