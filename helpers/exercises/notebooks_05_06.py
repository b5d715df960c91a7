"""The checkers of the exercises of notebooks 05 (the interactive studio) and 06 (beyond the basics)."""

import torch

from .common import call, close, first_match, report


# --- Notebook 05: the interactive studio --------------------------------------------------


def check_live_settings(answer):
    """Check a set of studio setting names that can change during a run, between two steps,
    without starting again (helpers.studio.LIVE_SETTINGS; "steps" may be in it or not)."""
    from ..studio import DEFAULT_SETTINGS, LIVE_SETTINGS, RESTART_SETTINGS, STYLE_LAYERS

    if isinstance(answer, str) or not all(isinstance(a, str) for a in _iterable(answer)):
        return report([f"give a set of setting names such as {{'style_weight'}}, got {answer!r}"], "")
    given = set(answer) - {"steps"}
    reasons = {
        "size_px": "the targets (content features, Gram matrices) were computed at one size",
        "optimizer": "a new optimizer starts without the old one's memory (Adam's moments, L-BFGS's history)",
        "init": "the start image matters only at the start: changing it means starting again",
        "pooling": "another pooling is another network, with other targets",
        "preserve_color": "it changes the photo and painting the targets are computed from",
        "style_scale": "the Gram targets were computed from the painting at one size",
    }
    problems = [f"{name!r} is not a studio setting; they are: {', '.join(DEFAULT_SETTINGS)}"
                for name in sorted(given - set(DEFAULT_SETTINGS))]
    problems += [f"{name} cannot change mid-run: {reasons[name]}" for name in RESTART_SETTINGS if name in given]
    missing = [name for name in LIVE_SETTINGS if name not in given]
    if missing:  # how many, not which: the names would be the whole answer
        problems.append(f"{len(missing)} more setting{'s' if len(missing) != 1 else ''} can change between two "
                        "steps: which ones touch neither the targets nor the optimizer's memory?")
    return report(problems, "right: weights and the learning rate change the loss or the step, not the targets")


def _iterable(answer):
    try:
        return list(answer)
    except TypeError:
        return [None]


def check_studio_layer_weights(fn):
    """Check `fn(sliders)` -> the style_layer_weights the engine gets from the studio's layer
    sliders ({"relu1_1": w1, ..., "relu5_1": w5}, 1 = the default share): (w1/5, ..., w5/5)."""
    from ..studio import STYLE_LAYERS, settings_to_config

    cases = [dict.fromkeys(STYLE_LAYERS, 1.0), dict(zip(STYLE_LAYERS, (4.0, 1.0, 1.0, 0.5, 0.0))),
             dict(zip(reversed(STYLE_LAYERS), (0.0, 0.0, 2.0, 3.0, 5.0)))]
    for sliders in cases:
        want = settings_to_config(sliders).style_layer_weights
        out, problem = call(fn, dict(sliders))
        if problem:
            return report([problem], "")
        try:
            out = tuple(float(v) for v in out)
        except (TypeError, ValueError):
            return report([f"return one number per style layer, got {out!r}"], "")
        if len(out) != len(STYLE_LAYERS):
            return report([f"return {len(STYLE_LAYERS)} weights, one per style layer, got {len(out)}"], "")
        if all(abs(a - b) < 1e-9 for a, b in zip(out, want)):
            continue
        values = [sliders[layer] for layer in STYLE_LAYERS]
        total = sum(values) or 1.0
        hint = next((message for guess, message in [
            (values, "those are the slider values as they are: with every slider at 1 the engine would get "
                     "w_l = 1, not the paper's share"),
            ([v / total for v in values], "your weights always sum to 1: turning one layer up turns the "
                                          "others down"),
            ([sliders[k] / len(STYLE_LAYERS) for k in sliders], "the weights come in the dict's order, "
                                                                 "not the network's (relu1_1 first)"),
        ] if all(abs(a - b) < 1e-9 for a, b in zip(out, guess))), None)
        return report([hint or f"for sliders {values} expected {want}, got {out}"], "")
    return report([], "your weights match the studio's settings_to_config")


# --- Notebook 06: beyond the basics ------------------------------------------------------


def check_luminance(fn):
    """Check `fn(rgb)` -> the luminance Y = .299 R + .587 G + .114 B, shape (N, 1, H, W)."""
    from ..color import luminance

    generator = torch.Generator().manual_seed(6)
    images = [torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1), torch.rand(2, 3, 4, 5, generator=generator)]
    for rgb in images:
        out, problem = call(fn, rgb.clone())
        if problem:
            return report([problem], "")
        if not isinstance(out, torch.Tensor):
            return report([f"return a tensor, got a {type(out).__name__}"], "")
        want = luminance(rgb)
        if out.shape != want.shape:
            return report([f"for an image of shape {tuple(rgb.shape)} expected shape {tuple(want.shape)} "
                            f"(one channel, kept with keepdim=True), got {tuple(out.shape)}"], "")
        if close(out, want):
            continue
        hint = first_match(out, [
            (rgb.mean(dim=1, keepdim=True), "you averaged R, G and B: each colour counts the same, "
                                            "but not for the eye"),
            (luminance(rgb.flip(1)), "the weights go to the wrong channels: channel 0 is red"),
        ])
        return report([hint or "the values differ from the luminance Y of section 1"], "")
    return report([], "your luminance matches helpers.color.luminance")


def check_blend_grams(fn):
    """Check `fn(grams, weights)` -> Σ_i w_i G_i / Σ_i w_i, the style target of several styles."""
    generator = torch.Generator().manual_seed(6)
    grams = [torch.rand(1, 4, 4, generator=generator) for _ in range(3)]
    for weights in ([1.0, 0.0, 0.0], [1.0, 3.0, 0.0], [2.0, 2.0, 4.0]):
        out, problem = call(fn, [g.clone() for g in grams], list(weights))
        if problem:
            return report([problem], "")
        if not isinstance(out, torch.Tensor):
            return report([f"return a tensor, got a {type(out).__name__}"], "")
        want = sum(w * g for w, g in zip(weights, grams)) / sum(weights)
        if out.shape == want.shape and close(out, want):
            continue
        hint = first_match(out, [
            (sum(w * g for w, g in zip(weights, grams)), "the target grows with the weights: 2, 2, 4 is the "
                                                         "same mix as 1, 1, 2, yet gives twice the target"),
            (sum(grams) / len(grams), "every style got the same share, whatever its weight"),
        ])
        return report([hint or f"for weights {weights} the mix differs from the engine's"], "")
    return report([], "your blend matches the engine's mix of Gram matrices")
