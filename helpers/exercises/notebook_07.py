"""The checkers of the exercises of notebook 07, real-time style transfer."""

import torch

from .common import call, call_for_tensor, close, first_match, report


# --- Notebook 07: real-time style transfer -----------------------------------------------------------

def check_instance_norm(fn):
    """Check `fn(x)` (no learned scale or shift, eps 1e-5) against `torch.nn.functional.instance_norm`.

    Names the usual slips by what is wrong in the result, not by the fix: statistics over the
    whole batch (that is batch normalization), over channels too (layer normalization), the
    unbiased variance, no eps, the variance where its square root belongs, no division at all.
    """
    generator = torch.Generator().manual_seed(7)
    # three pictures of very different contrast; in the faint one eps matters (variance 1e-4)
    x = torch.randn(3, 4, 5, 6, generator=generator) * torch.tensor([1.0, 4.0, 0.01]).view(3, 1, 1, 1) + 2
    out, problem = call_for_tensor(fn, x)
    if problem:
        return report([problem], "")
    want = torch.nn.functional.instance_norm(x, eps=1e-5)
    if out.shape != x.shape:
        return report([f"the result has shape {tuple(out.shape)}: it must keep the input's shape {tuple(x.shape)}"], "")
    if not close(out, want, rtol=1e-3, atol=1e-4):
        m = x.mean(dim=(2, 3), keepdim=True)
        hint = first_match(out, [
            ((x - x.mean(dim=(0, 2, 3), keepdim=True)) / (x.var(dim=(0, 2, 3), keepdim=True, unbiased=False) + 1e-5).sqrt(),
             "those are statistics over the whole batch (that is batch normalization): a faint picture stays faint "
             "beside a contrasty one"),
            ((x - x.mean(dim=(1, 2, 3), keepdim=True)) / (x.var(dim=(1, 2, 3), keepdim=True, unbiased=False) + 1e-5).sqrt(),
             "those are statistics over all channels of a picture together (that is layer normalization): "
             "each channel's own mean and spread survive"),
            ((x - m) / (x.var(dim=(2, 3), keepdim=True, unbiased=True) + 1e-5).sqrt(),
             "that is the unbiased variance (a sum divided by H·W − 1), not the one a normalization layer uses"),
            ((x - m) / x.var(dim=(2, 3), keepdim=True, unbiased=False).sqrt(),
             "eps is missing under the square root: it matters in the faint picture, whose variance is only 1e-4"),
            ((x - m) / (x.var(dim=(2, 3), keepdim=True, unbiased=False) + 1e-5),
             "the result is divided by the variance, the standard deviation squared: each picture's contrast still "
             "shows in it"),
            (x - m, "the mean is removed, but each picture keeps its own spread: a faint picture stays faint"),
        ]) or "the result differs from torch.nn.functional.instance_norm(x)"
        return report([hint], "")
    return report([], "your instance normalization matches torch.nn.functional.instance_norm")


def check_flicker(fn):
    """Check `fn(frames, shift_px)` against `helpers.realtime.flicker` on a pan of known frames; a
    wrong result is named by what is wrong in it (the camera's motion counted, the wrong direction,
    the wrong units, a total), not by the fix."""
    from ..realtime import flicker

    generator = torch.Generator().manual_seed(3)
    strip = torch.rand(1, 3, 12, 40, generator=generator)
    still = [strip[..., t * 4:t * 4 + 24].clone() for t in range(4)]  # a perfect pan: flicker 0
    noisy = [f + 0.05 * torch.randn(f.shape, generator=generator) for f in still]
    for frames, name in ((still, "a pan with no flicker"), (noisy, "a pan with noise added")):
        out, problem = call(fn, frames, 4)
        if problem:
            return report([problem], "")
        try:
            out = float(out)
        except (TypeError, ValueError):
            return report([f"your function returned {type(out).__name__}, not a number"], "")
        want = flicker(frames, 4)
        if abs(out - want) > 1e-3 * max(1.0, want):
            s = 4
            diffs = [(b - a).abs().mean() for a, b in zip(frames, frames[1:])]
            unshifted = 255 * float(sum(diffs)) / 3
            wrong_way = 255 * float(sum((b[..., s:] - a[..., :-s]).abs().mean() for a, b in zip(frames, frames[1:]))) / 3
            hints = [(unshifted, "you compared frames as they are: the camera's own motion counts as flicker, "
                                 "so even a perfect pan scores above 0"),
                     (wrong_way, "the frames are matched the other way round: the camera pans right, so the scene "
                                 "moves left in the frame"),
                     (want / 255, "that is in 0..1, not in 0..255 levels"),
                     (want * 3, "that is the total over the pairs of frames: a longer pan would score higher for "
                                "the same flicker")]
            hint = next((m for v, m in hints if abs(out - v) <= 1e-3 * max(1.0, abs(v))), None)
            return report([hint or f"for {name} expected {want:.4g}, got {out:.4g}"], "")
    return report([], "your flicker measure matches helpers.realtime.flicker")
