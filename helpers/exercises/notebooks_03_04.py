"""The checkers of the exercises of notebooks 03 (the style representation) and 04 (style transfer)."""

import torch

from .common import call, call_for_tensor, close, first_match, report


# --- Notebook 03: the style representation -----------------------------------------------



def check_gram_matrix(fn):
    """Check `fn(features)` against `losses.gram_matrix`: (N, C, H, W) -> (N, C, C), ÷ C·H·W.

    Tries a small known tensor, a non-square map and a batch of two, checks the gradient,
    and names the usual slips (no normalization, only ÷ H·W, Fᵀ·F instead of F·Fᵀ, the
    batch dimension lost or mixed).
    """
    from ..losses import gram_matrix

    generator = torch.Generator().manual_seed(0)
    inputs = [torch.arange(12.0).view(1, 3, 2, 2) / 10, torch.randn(1, 4, 3, 5, generator=generator),
              torch.randn(2, 5, 2, 3, generator=generator)]
    for features in inputs:
        n, c, h, w = features.shape
        f = features.clone().requires_grad_(True)
        out, problem = call_for_tensor(fn, f)
        if problem:
            return report([problem], "")
        flat = features.reshape(n, c, h * w)
        raw = flat @ flat.transpose(1, 2)
        if out.shape != (n, c, c):
            if out.shape[-2:] == (h * w, h * w):
                hint = (f"the result is {h * w}×{h * w}, positions × positions; a Gram matrix compares "
                        f"channels, {c}×{c} here")
            elif out.shape == (c, c) or (n == 1 and out.numel() == c * c):
                hint = f"the batch dimension is lost: the shape should be (N, C, C) = {(n, c, c)}, yours is {tuple(out.shape)}"
            elif out.shape == (n * c, n * c) or out.shape == (1, n * c, n * c):
                hint = "the images of the batch got mixed into one Gram matrix: each image needs its own"
            else:
                hint = (f"for features of shape {tuple(features.shape)} the result should have shape "
                        f"(N, C, C) = {(n, c, c)}, yours is {tuple(out.shape)}")
            return report([hint], "")
        want = gram_matrix(features)
        if not close(out.detach(), want):
            hint = first_match(out.detach().float(), [
                (raw, f"not normalized: for features of shape {tuple(features.shape)} every entry is "
                      f"{c * h * w} times too large"),
                (raw / (h * w), f"normalized by the positions alone: every entry is C = {c} times too large"),
                (raw / c, f"normalized by the channels alone: every entry is H·W = {h * w} times too large"),
                (raw / (c * c), f"normalized by C² = {c * c}: not the number the Gram matrix is defined with"),
                (raw / (c * h * w) ** 2, "normalized twice: every entry is far too small"),
                (raw / (n * c * h * w), f"the batch size N = {n} went into the normalization: each image's "
                                        "Gram matrix is its own"),
            ]) or f"for features of shape {tuple(features.shape)} the values differ from gram_matrix's"
            return report([hint], "")
        if not out.requires_grad:
            return report(["the result carries no gradient: it was cut off from the features on the way"], "")
        out.sum().backward()
        ref = features.clone().requires_grad_(True)
        gram_matrix(ref).sum().backward()
        if f.grad is None or not close(f.grad, ref.grad, rtol=1e-3):
            return report(["the gradient with respect to the features is wrong"], "")
    return report([], "your Gram matrix matches helpers.losses.gram_matrix: (N, C, C), normalized by C·H·W")


def check_layer_style_loss(fn):
    """Check `fn(features, target_gram)`, the style loss E_l of one layer, against `losses.style_loss`.

    E_l is the mean over the C×C entries of (G − A)², with G = gram_matrix(features).
    Names the usual slips (a sum, the feature maps compared instead of Grams, a raw
    unnormalized Gram matrix, no square, the paper's 1/(4N²M²) factor).
    """
    from ..losses import gram_matrix, style_loss

    generator = torch.Generator().manual_seed(1)
    cases = []
    for shape in [(1, 3, 2, 2), (1, 8, 5, 4), (1, 16, 6, 6)]:
        features = torch.randn(*shape, generator=generator)
        target = gram_matrix(torch.randn(*shape, generator=generator).abs())
        cases.append((features, target))
    same = torch.rand(1, 4, 3, 3, generator=generator)
    cases.append((same, gram_matrix(same)))
    for features, target in cases:
        n, c, h, w = features.shape
        f = features.clone().requires_grad_(True)
        out, problem = call_for_tensor(fn, f, target.clone(), scalar=True)
        if problem:
            return report([problem], "")
        want = style_loss({"l": features}, {"l": target}, {"l": 1.0})
        if not close(out.detach(), want):
            g = gram_matrix(features)
            flat = features.reshape(n, c, h * w)
            raw = flat @ flat.transpose(1, 2)
            d = g - target
            hint = first_match(out.detach().float().view(1), [
                (d.pow(2).sum().view(1), f"that is the sum over the C×C = {c * c} entries, {c * c} times E_l"),
                ((raw - target).pow(2).mean().view(1), "G is the raw F·Fᵀ here, while the painting's A is "
                                                       "normalized: the two are not on one scale"),
                ((raw - target).pow(2).sum().view(1) / (4 * c ** 2 * (h * w) ** 2),
                 "that is the paper's E_l, 1/(4N²M²)·Σ with raw sums, not this tutorial's"),
                (d.abs().mean().view(1), "those are absolute differences, not squared ones"),
                (d.mean().view(1), "the differences were averaged unsquared: positive and negative ones cancel"),
                (d.pow(2).mean().sqrt().view(1), "that is the square root of E_l"),
            ]) or f"for features of shape {tuple(features.shape)} expected {want.item():.6g}, got {out.item():.6g}"
            return report([hint], "")
        if not out.requires_grad:
            return report(["the result carries no gradient: it was cut off from the features on the way"], "")
    return report([], "your style loss for one layer matches helpers.losses.style_loss")


# --- Notebook 04: style transfer ------------------------------------------------------------


def check_total_variation_loss(fn):
    """Check `fn(image)` against `losses.total_variation_loss` on images of several shapes.

    Names the usual slips (sums instead of means, absolute values instead of squares, one
    direction only, differences that wrap around the border with torch.roll).
    """
    from ..losses import total_variation_loss

    generator = torch.Generator().manual_seed(2)
    ramp = torch.tensor([0.0, 0.1, 0.4, 0.9]).view(1, 1, 1, 4).expand(1, 3, 3, 4).clone()  # a ramp, no wrap
    images = [ramp, torch.rand(1, 3, 5, 7, generator=generator), torch.rand(1, 3, 8, 6, generator=generator),
              torch.full((1, 3, 4, 4), 0.5)]
    for image in images:
        x = image.clone().requires_grad_(True)
        out, problem = call_for_tensor(fn, x, scalar=True)
        if problem:
            return report([problem], "")
        want = total_variation_loss(image)
        if not close(out.detach(), want):
            dx = image[..., :, 1:] - image[..., :, :-1]
            dy = image[..., 1:, :] - image[..., :-1, :]
            rx = image.roll(-1, dims=-1) - image
            ry = image.roll(-1, dims=-2) - image
            hint = first_match(out.detach().float().view(1), [
                ((dx.pow(2).sum() + dy.pow(2).sum()).view(1), "those are sums: take the mean of each direction's squares"),
                ((dx.abs().mean() + dy.abs().mean()).view(1), "square the differences instead of taking absolute values"),
                (dx.pow(2).mean().view(1), "only horizontal neighbours: the vertical ones are missing"),
                (dy.pow(2).mean().view(1), "only vertical neighbours: add the horizontal term (dx) too"),
                ((rx.pow(2).mean() + ry.pow(2).mean()).view(1),
                 "the differences wrap around the border (torch.roll): compare x[..., 1:] with x[..., :-1] instead"),
                ((dx.pow(2).mean() + dy.pow(2).mean()).sqrt().view(1), "no square root: add the two means of squares"),
                ((0.5 * (dx.pow(2).mean() + dy.pow(2).mean())).view(1), "add the two terms, do not average them"),
            ]) or f"for an image of shape {tuple(image.shape)} expected {want.item():.6g}, got {out.item():.6g}"
            return report([hint], "")
        if not out.requires_grad:
            return report(["the result carries no gradient: do not detach the image"], "")
    return report([], "your total variation loss matches helpers.losses.total_variation_loss")


def check_time_estimate(answer, seconds_per_step, steps, size_px, measured_px):
    """Check an estimate of the seconds that `steps` steps at `size_px` take, given the
    `seconds_per_step` measured at `measured_px`: the cost grows with the number of pixels,
    (size_px / measured_px)², and linearly with the steps. Within 10 % counts as right."""
    want = seconds_per_step * steps * (size_px / measured_px) ** 2
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or answer != answer:
        return report([f"give one number of seconds, got {answer!r}"], "")

    def near(value):
        return abs(answer - value) <= 0.1 * abs(value)

    if near(want):
        return report([], f"about {want:.0f} s ({want / 60:.1f} min) for {steps} steps at {size_px} px")
    ratio = size_px / measured_px
    for value, message in [
        (seconds_per_step * steps * ratio, f"that grows the time with the side of the picture, {ratio:g}×: is "
                                           "the side what a convolution's work grows with?"),
        (seconds_per_step * steps, f"that is the time at {measured_px} px, as if a step at {size_px} px did no "
                                   "more work: what does a step's work grow with?"),
        (seconds_per_step * ratio ** 2, f"that is one step: multiply by {steps} steps"),
        (want / 60, "that looks like minutes: give seconds"),
    ]:
        if near(value):
            return report([message], "")
    return report([f"{answer:g} s is not it: seconds per step × steps × (size / measured size)²"], "")


class _ToyNetwork(torch.nn.Module):
    """A stand-in for VGG-19 in the loop exercise: one small convolution whose weights require
    a gradient, so that a loop which optimizes the network instead of the image shows."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.linspace(-1, 1, self.conv.weight.numel()).view_as(self.conv.weight))
            self.conv.bias.zero_()

    def forward(self, image):
        return self.conv(image)


def _reference_loop(content, total_loss, steps, learning_rate):
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=learning_rate)
    for _ in range(steps):
        optimizer.zero_grad()
        total_loss(image).backward()
        optimizer.step()
        with torch.no_grad():
            image.clamp_(0, 1)
    return image.detach()


def check_optimization_loop(fn, steps=8, learning_rate=0.05):
    """Check `fn(model, content, total_loss, steps, learning_rate)`, a learner's style-transfer loop
    (`total_loss(image)` runs `model` on the image):
    start from a copy of `content`, take `steps` Adam steps on `total_loss(image)` with
    respect to the image's pixels, clip to [0, 1] after each, return the image.

    It runs the loop on a toy problem (a small convolution stands in for VGG-19, and the
    target pushes some pixels past 1) and names the usual slips: optimizing the network
    instead of the image, a missing `zero_grad`, no clamp, the photo changed in place,
    a loss detached from the image, or a wrong number of steps.
    """
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 12, 10, generator=generator)
    network = _ToyNetwork()
    weights_before = [p.detach().clone() for p in network.parameters()]
    target = network(torch.full_like(content, 1.6)).detach()  # reachable only above 1
    calls, stale_grad = [], []

    def total_loss(image):
        # Called once per step: the image's gradient must be empty here, or the steps add up.
        grad = getattr(image, "grad", None)
        if calls and grad is not None and grad.abs().sum() > 0:
            stale_grad.append(len(calls))
        calls.append(image)
        return (network(image) - target).pow(2).mean()

    given = content.clone()
    out, problem = call(fn, network, given, total_loss, steps, learning_rate)
    if problem:
        if "does not require grad" in problem or "does not have a grad_fn" in problem:
            problem = ("the loss has no gradient with respect to the image: the chain from the pixels to the "
                       "loss is cut somewhere (requires_grad, .detach(), .item(), torch.no_grad())")
        return report([problem], "")
    problems = []
    if not torch.equal(given, content):
        problems.append("the photo itself was changed: the loop worked on the photo in place, not on a copy")
    if any(not torch.equal(a, b) for a, b in zip(weights_before, network.parameters())):
        problems.append("the network's weights changed: the optimizer was given the network's parameters; "
                        "in style transfer, what are the parameters?")
    if not isinstance(out, torch.Tensor) or out.shape != content.shape:
        problems.append(f"return the image, a tensor of shape {tuple(content.shape)}; got "
                        f"{type(out).__name__ if not isinstance(out, torch.Tensor) else tuple(out.shape)}")
        return report(problems, "")
    out = out.detach()
    if len(calls) != steps:
        problems.append(f"total_loss was called {len(calls)} times for {steps} steps")
    if stale_grad:
        problems.append(f"at step {stale_grad[0] + 1} the image still had the last step's gradient: "
                        "backward() adds to .grad, and the steps' gradients add up")
    if out.max() > 1 + 1e-6 or out.min() < -1e-6:
        problems.append(f"pixels ended outside [0, 1] (max {out.max().item():.2f}): nothing keeps the image "
                        "a valid picture after each step")
    if torch.equal(out, content) and not problems:
        problems.append("the image did not change: no step ever moved its pixels")
    if not problems:
        want = _reference_loop(content, total_loss, steps, learning_rate)
        if not close(out, want, rtol=1e-4, atol=1e-5):
            problems.append("the image differs from what torch.optim.Adam's steps at this learning rate "
                            "make of the same loss")
    return report(problems, f"{steps} Adam steps on the image's pixels, clipped to [0, 1]: that is the whole loop")
