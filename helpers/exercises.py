"""Checkers for the notebooks' "try it" exercises.

Each `check_*` function runs a learner's function against the helpers' own on a few
inputs and prints what is right or, in one line each, what is wrong. It returns True
when everything matches, so a notebook can also `assert` it.
"""

import torch


def _report(problems, success):
    if problems:
        for p in problems:
            print("✗ " + p)
        return False
    print("✓ " + success)
    return True


def _close(a, b, rtol=1e-4, atol=1e-6):
    return torch.allclose(a.float(), b.float(), rtol=rtol, atol=atol)


def _call(fn, *args):
    """Run a learner's function; return (result, None), or (None, a one-line problem) if it raised."""
    try:
        return fn(*args), None
    except Exception as err:  # whatever the learner's code does, report it in one line, never raise
        return None, f"your function raised {err.__class__.__name__}: {err}"


def _first_match(out, candidates):
    """The message of the first (tensor, message) candidate that `out` equals, else None."""
    for tensor, message in candidates:
        if out.shape == tensor.shape and _close(out, tensor, atol=1e-3):
            return message
    return None


# --- Notebook 01: images and VGG-19 -------------------------------------------------------


def check_caffe_preprocess(fn):
    """Check `fn(rgb)` against `CaffePreprocess`: RGB in [0, 1] -> BGR, 0..255, minus the mean.

    Tries images of several shapes, one of them a single known pixel, and names the usual
    slip (RGB order kept, no ×255, mean missing or in the wrong order, an extra /std). Its
    messages say what is wrong with the result, not which code to write.
    """
    from .network import CAFFE_MEAN_BGR, IMAGENET_STD, CaffePreprocess

    reference = CaffePreprocess()
    mean_bgr = torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    pixel = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)  # orange: R=1, G=0.5, B=0
    generator = torch.Generator().manual_seed(0)
    images = [pixel, torch.rand(1, 3, 5, 7, generator=generator), torch.rand(2, 3, 4, 4, generator=generator)]
    for rgb in images:
        given = rgb.clone()
        out, problem = _call(fn, given)
        if problem:
            return _report([problem], "")
        if not isinstance(out, torch.Tensor):
            return _report([f"return a tensor, not {type(out).__name__}"], "")
        if not torch.equal(given, rgb):
            return _report(["your function changed its input in place: the caller's image is not the same any more"], "")
        if out.shape != rgb.shape:
            return _report([f"for an input of shape {tuple(rgb.shape)} the output should have the same "
                            f"shape, yours has {tuple(out.shape)}"], "")
        want = reference(rgb)
        if _close(out, want, atol=1e-3):
            continue
        bgr = rgb.flip(1)
        hint = _first_match(out.float(), [
            (rgb * 255 - mean_bgr.flip(1), "the channels come out in R, G, B order, the input's"),
            (rgb * 255 - mean_bgr, "the channels come out in R, G, B order, the input's"),
            (bgr * 255 - mean_bgr.flip(1), "the channels are B, G, R, but the mean taken off each is another "
                                           "channel's"),
            (rgb * 255, "only the scaling to 0..255 matches CaffePreprocess: the channel order and the "
                        "mean are still off"),
            (bgr * 255, "the mean is not subtracted: every value is still between 0 and 255"),
            (bgr - mean_bgr, "the values were not scaled to 0..255 before the mean came off"),
            (bgr - mean_bgr / 255, "the values stayed in 0..1, a scale 255 times smaller than the network "
                                   "was trained on"),
            ((bgr * 255 - mean_bgr) / (255 * std.flip(1)), "the result is divided by a standard deviation, "
                                                           "which Caffe's preprocessing never does"),
            ((bgr * 255 - mean_bgr) / std.flip(1), "the result is divided by a standard deviation, "
                                                   "which Caffe's preprocessing never does"),
        ])
        if hint is None:
            got = ", ".join(f"{v:.1f}" for v in out.detach().float().flatten()[:3].tolist())
            hint = (f"for the pixel RGB (1.0, 0.5, 0.0) the result should be (B, G, R) = "
                    f"({', '.join(f'{v:.1f}' for v in reference(pixel).flatten().tolist())}), "
                    f"yours starts ({got})" if rgb is pixel else
                    "the result differs from CaffePreprocess on a random image")
        return _report([hint], "")
    return _report([], "your preprocessing matches CaffePreprocess: BGR, 0..255, mean subtracted")


def _as_int_tuple(answer, length):
    if isinstance(answer, torch.Size):
        answer = tuple(answer)
    if not isinstance(answer, (tuple, list)) or len(answer) != length:
        return None
    try:
        values = tuple(int(v) for v in answer)
    except (TypeError, ValueError):
        return None
    return values if all(v == a for v, a in zip(values, answer)) else None


def check_feature_shape(answer, layer="relu4_2", height=300, width=200):
    """Check a predicted shape (channels, height, width) of `layer` for an H×W input image.

    VGG-19's 3×3 convolutions are padded and keep the size; each 2×2 max pooling before
    `layer` halves it, rounding down.
    """
    from .layers import LAYER_INDEX, LAYER_NAMES, check_layers

    check_layers(layer)
    pools = [n for n in LAYER_NAMES[: LAYER_INDEX[layer] + 1] if n.startswith("pool")]
    channels = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}[int(layer[4])]
    h, w = height, width
    for _ in pools:
        h, w = h // 2, w // 2
    want = (channels, h, w)
    got = _as_int_tuple(answer, 3)
    if got is None:
        return _report([f"give three whole numbers (channels, height, width), got {answer!r}"], "")
    problems = []
    if got[0] != channels:
        problems.append(f"{got[0]} channels is not the number of channels of {layer}'s block")
    if got[1:] == (w, h) and h != w:
        problems.append("height and width are swapped: the order is (channels, height, width)")
    elif got[1:] != (h, w):
        ceil_h, ceil_w = height, width
        for _ in pools:
            ceil_h, ceil_w = -(-ceil_h // 2), -(-ceil_w // 2)
        after = {}  # (height, width) after k poolings, rounding down: k
        sh, sw = height, width
        for k in range(6):
            after.setdefault((sh, sw), k)
            sh, sw = sh // 2, sw // 2
        if got[1:] == (ceil_h, ceil_w):
            problems.append("somewhere an odd size was rounded up: a 2×2 pooling drops a last row or "
                            "column that has no partner")
        elif got[1:] in after:
            k = after[got[1:]]
            problems.append(f"{got[1]}×{got[2]} is the size after {k} pooling{'s' if k != 1 else ''}: "
                            f"that is not how many come before {layer}")
        else:
            problems.append(f"{got[1]}×{got[2]} is not the size after any number of poolings "
                            f"of a {height}×{width} image")
    return _report(problems, f"{layer} of a {height}×{width} image has shape {want}")


def check_receptive_field(answer, layer="relu4_2"):
    """Check the side (px) of the input square that one activation of `layer` can see.

    Walking down the stack with `jump` = the downsampling so far (1 at the input): a 3×3
    convolution widens the field by 2·jump; a 2×2 pooling by jump, then doubles jump.
    """
    from .layers import LAYER_INDEX, check_layers, layer_table

    check_layers(layer)
    want = layer_table()[LAYER_INDEX[layer]]["receptive_field"]
    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or answer != int(answer):
        return _report([f"give a whole number of pixels, got {answer!r}"], "")
    if int(answer) == want:
        return _report([], f"one activation of {layer} sees a square of {want}×{want} px of the input")
    convs = sum(1 for n in list(LAYER_INDEX)[: LAYER_INDEX[layer] + 1] if n.startswith("conv"))
    if int(answer) == 1 + 2 * convs:
        return _report([f"{int(answer)} px counts every convolution as +2 px, as if jump stayed 1: "
                        "the poolings changed nothing"], "")
    field, jump = 1, 1  # the usual slip: the poolings double jump but add nothing to the field
    for name in list(LAYER_INDEX)[: LAYER_INDEX[layer] + 1]:
        if name.startswith("conv"):
            field += 2 * jump
        elif name.startswith("pool"):
            jump *= 2
    if int(answer) == field:
        return _report([f"{int(answer)} px: the poolings doubled jump but added nothing to the field"], "")
    side = "small" if answer < want else "large"
    return _report([f"{int(answer)} px is too {side}"], "")


# --- Notebook 02: the content representation ---------------------------------------------


def check_content_loss(fn):
    """Check `fn(features, target)` against `losses.content_loss` (the mean squared error).

    Tries feature maps of several shapes, identical maps (loss 0) and the gradient, and
    names the usual slip (a sum, the paper's ½·Σ, no square, a Python float).
    """
    from .losses import content_loss

    generator = torch.Generator().manual_seed(0)
    shapes = [(1, 4, 3, 5), (1, 64, 8, 8), (2, 3, 2, 2)]
    pairs = [(torch.randn(*s, generator=generator), torch.randn(*s, generator=generator)) for s in shapes]
    same = torch.randn(1, 8, 4, 4, generator=generator)
    pairs.append((same, same.clone()))
    for features, target in pairs:
        f = features.clone().requires_grad_(True)
        out, problem = _call_for_tensor(fn, f, target.clone(), scalar=True)
        if problem:
            return _report([problem], "")
        want = content_loss(features, target)
        if not _close(out.detach(), want):
            d = features - target
            hint = _first_match(out.detach().float().view(1), [
                (d.pow(2).sum().view(1), f"that is the sum of the squares, {features.numel()} times "
                                         f"the tutorial's value for shape {tuple(features.shape)}"),
                (0.5 * d.pow(2).sum().view(1), "that is the paper's ½·Σ, not the tutorial's loss"),
                (0.5 * d.pow(2).mean().view(1), "that is half the tutorial's loss: a factor ½ too many"),
                (d.pow(2).mean().sqrt().view(1), "that is the square root of the tutorial's loss"),
                (d.abs().mean().view(1), "those are absolute differences, not squared ones"),
                (d.mean().view(1), "the differences were averaged unsquared: positive and negative ones cancel"),
            ]) or f"for features of shape {tuple(features.shape)} expected {want.item():.6g}, got {out.item():.6g}"
            return _report([hint], "")
        if not out.requires_grad:
            return _report(["the result carries no gradient: it was cut off from the features on the way"], "")
        out.backward()
        if f.grad is None or not _close(f.grad, 2 * (features - target) / features.numel(), rtol=1e-3, atol=1e-6):
            return _report(["the gradient with respect to the features is not 2·(F − P)/(N·M)"], "")
    return _report([], "your content loss matches helpers.losses.content_loss, gradient included")


def check_content_loss_value(answer, features, target):
    """Check a content loss worked out by hand for the given (small) feature maps."""
    from .losses import content_loss

    want = content_loss(features, target).item()
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        return _report([f"give one number, got {answer!r}"], "")
    if abs(answer - want) <= 1e-3 * max(1.0, abs(want)):
        return _report([], f"the content loss is {want:g}")
    d = (features.float() - target.float()).flatten()
    n = d.numel()
    if answer == 0:
        return _report(["0 would mean that F and P are equal, entry by entry; they are not"], "")
    for value, message in [
        (d.pow(2).sum().item(), "that is the sum of the squared differences, not their mean"),
        (0.5 * d.pow(2).sum().item(), "that is the paper's ½·Σ, not the tutorial's mean"),
        (d.abs().mean().item(), "that is the mean of the differences' sizes, unsquared"),
        (d.mean().item(), "that is the mean of the differences, unsquared: positive and negative ones cancel"),
    ]:
        if abs(answer - value) <= 1e-3 * max(1.0, abs(value)):
            return _report([message], "")
    return _report([f"{answer:g} is not the mean of the squared differences of F and P"], "")


# --- Notebook 03: the style representation -----------------------------------------------


def _call_for_tensor(fn, *args, scalar=False):
    """Run a learner's function that should return a tensor (one number if `scalar`);
    return (tensor, None), or (None, a one-line problem)."""
    out, problem = _call(fn, *args)
    if problem:
        return None, problem
    if not isinstance(out, torch.Tensor):
        return None, f"return a tensor (it carries the gradient), not {type(out).__name__}"
    if scalar and (out.numel() != 1 or out.dim() != 0):
        return None, f"return one number (a 0-dimensional tensor), yours has shape {tuple(out.shape)}"
    return out, None


def check_gram_matrix(fn):
    """Check `fn(features)` against `losses.gram_matrix`: (N, C, H, W) -> (N, C, C), ÷ C·H·W.

    Tries a small known tensor, a non-square map and a batch of two, checks the gradient,
    and names the usual slips (no normalization, only ÷ H·W, Fᵀ·F instead of F·Fᵀ, the
    batch dimension lost or mixed).
    """
    from .losses import gram_matrix

    generator = torch.Generator().manual_seed(0)
    inputs = [torch.arange(12.0).view(1, 3, 2, 2) / 10, torch.randn(1, 4, 3, 5, generator=generator),
              torch.randn(2, 5, 2, 3, generator=generator)]
    for features in inputs:
        n, c, h, w = features.shape
        f = features.clone().requires_grad_(True)
        out, problem = _call_for_tensor(fn, f)
        if problem:
            return _report([problem], "")
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
            return _report([hint], "")
        want = gram_matrix(features)
        if not _close(out.detach(), want):
            hint = _first_match(out.detach().float(), [
                (raw, f"not normalized: for features of shape {tuple(features.shape)} every entry is "
                      f"{c * h * w} times too large"),
                (raw / (h * w), f"normalized by the positions alone: every entry is C = {c} times too large"),
                (raw / c, f"normalized by the channels alone: every entry is H·W = {h * w} times too large"),
                (raw / (c * c), f"normalized by C² = {c * c}: not the number the Gram matrix is defined with"),
                (raw / (c * h * w) ** 2, "normalized twice: every entry is far too small"),
                (raw / (n * c * h * w), f"the batch size N = {n} went into the normalization: each image's "
                                        "Gram matrix is its own"),
            ]) or f"for features of shape {tuple(features.shape)} the values differ from gram_matrix's"
            return _report([hint], "")
        if not out.requires_grad:
            return _report(["the result carries no gradient: it was cut off from the features on the way"], "")
        out.sum().backward()
        ref = features.clone().requires_grad_(True)
        gram_matrix(ref).sum().backward()
        if f.grad is None or not _close(f.grad, ref.grad, rtol=1e-3):
            return _report(["the gradient with respect to the features is wrong"], "")
    return _report([], "your Gram matrix matches helpers.losses.gram_matrix: (N, C, C), normalized by C·H·W")


def check_layer_style_loss(fn):
    """Check `fn(features, target_gram)`, the style loss E_l of one layer, against `losses.style_loss`.

    E_l is the mean over the C×C entries of (G − A)², with G = gram_matrix(features).
    Names the usual slips (a sum, the feature maps compared instead of Grams, a raw
    unnormalized Gram matrix, no square, the paper's 1/(4N²M²) factor).
    """
    from .losses import gram_matrix, style_loss

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
        out, problem = _call_for_tensor(fn, f, target.clone(), scalar=True)
        if problem:
            return _report([problem], "")
        want = style_loss({"l": features}, {"l": target}, {"l": 1.0})
        if not _close(out.detach(), want):
            g = gram_matrix(features)
            flat = features.reshape(n, c, h * w)
            raw = flat @ flat.transpose(1, 2)
            d = g - target
            hint = _first_match(out.detach().float().view(1), [
                (d.pow(2).sum().view(1), f"that is the sum over the C×C = {c * c} entries, {c * c} times E_l"),
                ((raw - target).pow(2).mean().view(1), "G is the raw F·Fᵀ here, while the painting's A is "
                                                       "normalized: the two are not on one scale"),
                ((raw - target).pow(2).sum().view(1) / (4 * c ** 2 * (h * w) ** 2),
                 "that is the paper's E_l, 1/(4N²M²)·Σ with raw sums, not this tutorial's"),
                (d.abs().mean().view(1), "those are absolute differences, not squared ones"),
                (d.mean().view(1), "the differences were averaged unsquared: positive and negative ones cancel"),
                (d.pow(2).mean().sqrt().view(1), "that is the square root of E_l"),
            ]) or f"for features of shape {tuple(features.shape)} expected {want.item():.6g}, got {out.item():.6g}"
            return _report([hint], "")
        if not out.requires_grad:
            return _report(["the result carries no gradient: it was cut off from the features on the way"], "")
    return _report([], "your style loss for one layer matches helpers.losses.style_loss")


# --- Notebook 04: style transfer ------------------------------------------------------------


def check_total_variation_loss(fn):
    """Check `fn(image)` against `losses.total_variation_loss` on images of several shapes.

    Names the usual slips (sums instead of means, absolute values instead of squares, one
    direction only, differences that wrap around the border with torch.roll).
    """
    from .losses import total_variation_loss

    generator = torch.Generator().manual_seed(2)
    ramp = torch.tensor([0.0, 0.1, 0.4, 0.9]).view(1, 1, 1, 4).expand(1, 3, 3, 4).clone()  # a ramp, no wrap
    images = [ramp, torch.rand(1, 3, 5, 7, generator=generator), torch.rand(1, 3, 8, 6, generator=generator),
              torch.full((1, 3, 4, 4), 0.5)]
    for image in images:
        x = image.clone().requires_grad_(True)
        out, problem = _call_for_tensor(fn, x, scalar=True)
        if problem:
            return _report([problem], "")
        want = total_variation_loss(image)
        if not _close(out.detach(), want):
            dx = image[..., :, 1:] - image[..., :, :-1]
            dy = image[..., 1:, :] - image[..., :-1, :]
            rx = image.roll(-1, dims=-1) - image
            ry = image.roll(-1, dims=-2) - image
            hint = _first_match(out.detach().float().view(1), [
                ((dx.pow(2).sum() + dy.pow(2).sum()).view(1), "those are sums: take the mean of each direction's squares"),
                ((dx.abs().mean() + dy.abs().mean()).view(1), "square the differences instead of taking absolute values"),
                (dx.pow(2).mean().view(1), "only horizontal neighbours: the vertical ones are missing"),
                (dy.pow(2).mean().view(1), "only vertical neighbours: add the horizontal term (dx) too"),
                ((rx.pow(2).mean() + ry.pow(2).mean()).view(1),
                 "the differences wrap around the border (torch.roll): compare x[..., 1:] with x[..., :-1] instead"),
                ((dx.pow(2).mean() + dy.pow(2).mean()).sqrt().view(1), "no square root: add the two means of squares"),
                ((0.5 * (dx.pow(2).mean() + dy.pow(2).mean())).view(1), "add the two terms, do not average them"),
            ]) or f"for an image of shape {tuple(image.shape)} expected {want.item():.6g}, got {out.item():.6g}"
            return _report([hint], "")
        if not out.requires_grad:
            return _report(["the result carries no gradient: do not detach the image"], "")
    return _report([], "your total variation loss matches helpers.losses.total_variation_loss")


def check_time_estimate(answer, seconds_per_step, steps, size_px, measured_px):
    """Check an estimate of the seconds that `steps` steps at `size_px` take, given the
    `seconds_per_step` measured at `measured_px`: the cost grows with the number of pixels,
    (size_px / measured_px)², and linearly with the steps. Within 10 % counts as right."""
    want = seconds_per_step * steps * (size_px / measured_px) ** 2
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or answer != answer:
        return _report([f"give one number of seconds, got {answer!r}"], "")

    def near(value):
        return abs(answer - value) <= 0.1 * abs(value)

    if near(want):
        return _report([], f"about {want:.0f} s ({want / 60:.1f} min) for {steps} steps at {size_px} px")
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
            return _report([message], "")
    return _report([f"{answer:g} s is not it: seconds per step × steps × (size / measured size)²"], "")


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
    out, problem = _call(fn, network, given, total_loss, steps, learning_rate)
    if problem:
        if "does not require grad" in problem or "does not have a grad_fn" in problem:
            problem = ("the loss has no gradient with respect to the image: the chain from the pixels to the "
                       "loss is cut somewhere (requires_grad, .detach(), .item(), torch.no_grad())")
        return _report([problem], "")
    problems = []
    if not torch.equal(given, content):
        problems.append("the photo itself was changed: the loop worked on the photo in place, not on a copy")
    if any(not torch.equal(a, b) for a, b in zip(weights_before, network.parameters())):
        problems.append("the network's weights changed: the optimizer was given the network's parameters; "
                        "in style transfer, what are the parameters?")
    if not isinstance(out, torch.Tensor) or out.shape != content.shape:
        problems.append(f"return the image, a tensor of shape {tuple(content.shape)}; got "
                        f"{type(out).__name__ if not isinstance(out, torch.Tensor) else tuple(out.shape)}")
        return _report(problems, "")
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
        if not _close(out, want, rtol=1e-4, atol=1e-5):
            problems.append("the image differs from what torch.optim.Adam's steps at this learning rate "
                            "make of the same loss")
    return _report(problems, f"{steps} Adam steps on the image's pixels, clipped to [0, 1]: that is the whole loop")


# --- Notebook 05: the interactive studio --------------------------------------------------


def check_live_settings(answer):
    """Check a set of studio setting names that can change during a run, between two steps,
    without starting again (helpers.studio.LIVE_SETTINGS; "steps" may be in it or not)."""
    from .studio import DEFAULT_SETTINGS, LIVE_SETTINGS, RESTART_SETTINGS, STYLE_LAYERS

    if isinstance(answer, str) or not all(isinstance(a, str) for a in _iterable(answer)):
        return _report([f"give a set of setting names such as {{'style_weight'}}, got {answer!r}"], "")
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
    return _report(problems, "right: weights and the learning rate change the loss or the step, not the targets")


def _iterable(answer):
    try:
        return list(answer)
    except TypeError:
        return [None]


def check_studio_layer_weights(fn):
    """Check `fn(sliders)` -> the style_layer_weights the engine gets from the studio's layer
    sliders ({"relu1_1": w1, ..., "relu5_1": w5}, 1 = the default share): (w1/5, ..., w5/5)."""
    from .studio import STYLE_LAYERS, settings_to_config

    cases = [dict.fromkeys(STYLE_LAYERS, 1.0), dict(zip(STYLE_LAYERS, (4.0, 1.0, 1.0, 0.5, 0.0))),
             dict(zip(reversed(STYLE_LAYERS), (0.0, 0.0, 2.0, 3.0, 5.0)))]
    for sliders in cases:
        want = settings_to_config(sliders).style_layer_weights
        out, problem = _call(fn, dict(sliders))
        if problem:
            return _report([problem], "")
        try:
            out = tuple(float(v) for v in out)
        except (TypeError, ValueError):
            return _report([f"return one number per style layer, got {out!r}"], "")
        if len(out) != len(STYLE_LAYERS):
            return _report([f"return {len(STYLE_LAYERS)} weights, one per style layer, got {len(out)}"], "")
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
        return _report([hint or f"for sliders {values} expected {want}, got {out}"], "")
    return _report([], "your weights match the studio's settings_to_config")


# --- Notebook 06: beyond the basics ------------------------------------------------------


def check_luminance(fn):
    """Check `fn(rgb)` -> the luminance Y = .299 R + .587 G + .114 B, shape (N, 1, H, W)."""
    from .color import luminance

    generator = torch.Generator().manual_seed(6)
    images = [torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1), torch.rand(2, 3, 4, 5, generator=generator)]
    for rgb in images:
        out, problem = _call(fn, rgb.clone())
        if problem:
            return _report([problem], "")
        if not isinstance(out, torch.Tensor):
            return _report([f"return a tensor, got a {type(out).__name__}"], "")
        want = luminance(rgb)
        if out.shape != want.shape:
            return _report([f"for an image of shape {tuple(rgb.shape)} expected shape {tuple(want.shape)} "
                            f"(one channel, kept with keepdim=True), got {tuple(out.shape)}"], "")
        if _close(out, want):
            continue
        hint = _first_match(out, [
            (rgb.mean(dim=1, keepdim=True), "you averaged R, G and B: each colour counts the same, "
                                            "but not for the eye"),
            (luminance(rgb.flip(1)), "the weights go to the wrong channels: channel 0 is red"),
        ])
        return _report([hint or "the values differ from the luminance Y of section 1"], "")
    return _report([], "your luminance matches helpers.color.luminance")


def check_blend_grams(fn):
    """Check `fn(grams, weights)` -> Σ_i w_i G_i / Σ_i w_i, the style target of several styles."""
    generator = torch.Generator().manual_seed(6)
    grams = [torch.rand(1, 4, 4, generator=generator) for _ in range(3)]
    for weights in ([1.0, 0.0, 0.0], [1.0, 3.0, 0.0], [2.0, 2.0, 4.0]):
        out, problem = _call(fn, [g.clone() for g in grams], list(weights))
        if problem:
            return _report([problem], "")
        if not isinstance(out, torch.Tensor):
            return _report([f"return a tensor, got a {type(out).__name__}"], "")
        want = sum(w * g for w, g in zip(weights, grams)) / sum(weights)
        if out.shape == want.shape and _close(out, want):
            continue
        hint = _first_match(out, [
            (sum(w * g for w, g in zip(weights, grams)), "the target grows with the weights: 2, 2, 4 is the "
                                                         "same mix as 1, 1, 2, yet gives twice the target"),
            (sum(grams) / len(grams), "every style got the same share, whatever its weight"),
        ])
        return _report([hint or f"for weights {weights} the mix differs from the engine's"], "")
    return _report([], "your blend matches the engine's mix of Gram matrices")


# --- Notebook 07: real-time style transfer -----------------------------------------------------------

def check_instance_norm(fn):
    """Check `fn(x)` (no learned scale or shift, eps 1e-5) against `torch.nn.functional.instance_norm`.

    Names the usual slips: statistics over the whole batch (that is batch normalization), over
    channels too (layer normalization), the unbiased variance, no eps, the standard deviation
    where the variance belongs.
    """
    generator = torch.Generator().manual_seed(7)
    # three pictures of very different contrast; in the faint one eps matters (variance 1e-4)
    x = torch.randn(3, 4, 5, 6, generator=generator) * torch.tensor([1.0, 4.0, 0.01]).view(3, 1, 1, 1) + 2
    out, problem = _call_for_tensor(fn, x)
    if problem:
        return _report([problem], "")
    want = torch.nn.functional.instance_norm(x, eps=1e-5)
    if out.shape != x.shape:
        return _report([f"the result has shape {tuple(out.shape)}: it must keep the input's shape {tuple(x.shape)}"], "")
    if not _close(out, want, rtol=1e-3, atol=1e-4):
        m = x.mean(dim=(2, 3), keepdim=True)
        hint = _first_match(out, [
            ((x - x.mean(dim=(0, 2, 3), keepdim=True)) / (x.var(dim=(0, 2, 3), keepdim=True, unbiased=False) + 1e-5).sqrt(),
             "those are statistics over the whole batch (batch normalization): take mean and variance over H and W only, "
             "dim=(2, 3)"),
            ((x - x.mean(dim=(1, 2, 3), keepdim=True)) / (x.var(dim=(1, 2, 3), keepdim=True, unbiased=False) + 1e-5).sqrt(),
             "those are statistics over all channels together (layer normalization): one mean and variance per channel, "
             "dim=(2, 3)"),
            ((x - m) / (x.var(dim=(2, 3), keepdim=True, unbiased=True) + 1e-5).sqrt(),
             "use the biased variance (unbiased=False), as normalization layers do"),
            ((x - m) / x.var(dim=(2, 3), keepdim=True, unbiased=False).sqrt(), "add eps = 1e-5 to the variance before the square root"),
            ((x - m) / (x.var(dim=(2, 3), keepdim=True, unbiased=False) + 1e-5),
             "divide by the square root of (variance + eps), the standard deviation, not by the variance"),
            (x - m, "subtracting the mean is half of it: divide by sqrt(variance + eps) too"),
        ]) or "the result differs from torch.nn.functional.instance_norm(x)"
        return _report([hint], "")
    return _report([], "your instance normalization matches torch.nn.functional.instance_norm")


def check_flicker(fn):
    """Check `fn(frames, shift_px)` against `helpers.realtime.flicker` on a pan of known frames."""
    from .realtime import flicker

    generator = torch.Generator().manual_seed(3)
    strip = torch.rand(1, 3, 12, 40, generator=generator)
    still = [strip[..., t * 4:t * 4 + 24].clone() for t in range(4)]  # a perfect pan: flicker 0
    noisy = [f + 0.05 * torch.randn(f.shape, generator=generator) for f in still]
    for frames, name in ((still, "a pan with no flicker"), (noisy, "a pan with noise added")):
        out, problem = _call(fn, frames, 4)
        if problem:
            return _report([problem], "")
        try:
            out = float(out)
        except (TypeError, ValueError):
            return _report([f"your function returned {type(out).__name__}: return a number"], "")
        want = flicker(frames, 4)
        if abs(out - want) > 1e-3 * max(1.0, want):
            s = 4
            diffs = [(b - a).abs().mean() for a, b in zip(frames, frames[1:])]
            unshifted = 255 * float(sum(diffs)) / 3
            wrong_way = 255 * float(sum((b[..., s:] - a[..., :-s]).abs().mean() for a, b in zip(frames, frames[1:]))) / 3
            hints = [(unshifted, "you compared frames as they are: move the next frame back by the shift first, "
                                 "b[..., :, :W-s] against a[..., :, s:]"),
                     (wrong_way, "the shift goes the other way: the pan moves right, so the next frame's left part "
                                 "b[..., :W-s] matches the previous frame's right part a[..., s:]"),
                     (want / 255, "report it in 0..255 levels: multiply by 255"),
                     (want * 3, "average over the pairs of frames, not the sum")]
            hint = next((m for v, m in hints if abs(out - v) <= 1e-3 * max(1.0, abs(v))), None)
            return _report([hint or f"for {name} expected {want:.4g}, got {out:.4g}"], "")
    return _report([], "your flicker measure matches helpers.realtime.flicker")
