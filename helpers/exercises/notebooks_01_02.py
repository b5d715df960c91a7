"""The checkers of the exercises of notebooks 01 (images and VGG-19) and 02 (the content representation)."""

import torch

from .common import call, call_for_tensor, close, first_match, report


# --- Notebook 01: images and VGG-19 -------------------------------------------------------


def check_caffe_preprocess(fn):
    """Check `fn(rgb)` against `CaffePreprocess`: RGB in [0, 1] -> BGR, 0..255, minus the mean.

    Tries images of several shapes, one of them a single known pixel, and names the usual
    slip (RGB order kept, no ×255, mean missing or in the wrong order, an extra /std). Its
    messages say what is wrong with the result, not which code to write.
    """
    from ..network import CAFFE_MEAN_BGR, IMAGENET_STD, CaffePreprocess

    reference = CaffePreprocess()
    mean_bgr = torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    pixel = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)  # orange: R=1, G=0.5, B=0
    generator = torch.Generator().manual_seed(0)
    images = [pixel, torch.rand(1, 3, 5, 7, generator=generator), torch.rand(2, 3, 4, 4, generator=generator)]
    for rgb in images:
        given = rgb.clone()
        out, problem = call(fn, given)
        if problem:
            return report([problem], "")
        if not isinstance(out, torch.Tensor):
            return report([f"return a tensor, not {type(out).__name__}"], "")
        if not torch.equal(given, rgb):
            return report(["your function changed its input in place: the caller's image is not the same any more"], "")
        if out.shape != rgb.shape:
            return report([f"for an input of shape {tuple(rgb.shape)} the output should have the same "
                            f"shape, yours has {tuple(out.shape)}"], "")
        want = reference(rgb)
        if close(out, want, atol=1e-3):
            continue
        bgr = rgb.flip(1)
        hint = first_match(out.float(), [
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
        return report([hint], "")
    return report([], "your preprocessing matches CaffePreprocess: BGR, 0..255, mean subtracted")


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
    from ..layers import LAYER_INDEX, LAYER_NAMES, check_layers

    check_layers(layer)
    pools = [n for n in LAYER_NAMES[: LAYER_INDEX[layer] + 1] if n.startswith("pool")]
    channels = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}[int(layer[4])]
    h, w = height, width
    for _ in pools:
        h, w = h // 2, w // 2
    want = (channels, h, w)
    got = _as_int_tuple(answer, 3)
    if got is None:
        return report([f"give three whole numbers (channels, height, width), got {answer!r}"], "")
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
    return report(problems, f"{layer} of a {height}×{width} image has shape {want}")


def check_receptive_field(answer, layer="relu4_2"):
    """Check the side (px) of the input square that one activation of `layer` can see.

    Walking down the stack with `jump` = the downsampling so far (1 at the input): a 3×3
    convolution widens the field by 2·jump; a 2×2 pooling by jump, then doubles jump.
    """
    from ..layers import LAYER_INDEX, check_layers, layer_table

    check_layers(layer)
    want = layer_table()[LAYER_INDEX[layer]]["receptive_field"]
    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or answer != int(answer):
        return report([f"give a whole number of pixels, got {answer!r}"], "")
    if int(answer) == want:
        return report([], f"one activation of {layer} sees a square of {want}×{want} px of the input")
    convs = sum(1 for n in list(LAYER_INDEX)[: LAYER_INDEX[layer] + 1] if n.startswith("conv"))
    if int(answer) == 1 + 2 * convs:
        return report([f"{int(answer)} px counts every convolution as +2 px, as if jump stayed 1: "
                        "the poolings changed nothing"], "")
    field, jump = 1, 1  # the usual slip: the poolings double jump but add nothing to the field
    for name in list(LAYER_INDEX)[: LAYER_INDEX[layer] + 1]:
        if name.startswith("conv"):
            field += 2 * jump
        elif name.startswith("pool"):
            jump *= 2
    if int(answer) == field:
        return report([f"{int(answer)} px: the poolings doubled jump but added nothing to the field"], "")
    side = "small" if answer < want else "large"
    return report([f"{int(answer)} px is too {side}"], "")


# --- Notebook 02: the content representation ---------------------------------------------


def check_content_loss(fn):
    """Check `fn(features, target)` against `losses.content_loss` (the mean squared error).

    Tries feature maps of several shapes, identical maps (loss 0) and the gradient, and
    names the usual slip (a sum, the paper's ½·Σ, no square, a Python float).
    """
    from ..losses import content_loss

    generator = torch.Generator().manual_seed(0)
    shapes = [(1, 4, 3, 5), (1, 64, 8, 8), (2, 3, 2, 2)]
    pairs = [(torch.randn(*s, generator=generator), torch.randn(*s, generator=generator)) for s in shapes]
    same = torch.randn(1, 8, 4, 4, generator=generator)
    pairs.append((same, same.clone()))
    for features, target in pairs:
        f = features.clone().requires_grad_(True)
        out, problem = call_for_tensor(fn, f, target.clone(), scalar=True)
        if problem:
            return report([problem], "")
        want = content_loss(features, target)
        if not close(out.detach(), want):
            d = features - target
            hint = first_match(out.detach().float().view(1), [
                (d.pow(2).sum().view(1), f"that is the sum of the squares, {features.numel()} times "
                                         f"the tutorial's value for shape {tuple(features.shape)}"),
                (0.5 * d.pow(2).sum().view(1), "that is the paper's ½·Σ, not the tutorial's loss"),
                (0.5 * d.pow(2).mean().view(1), "that is half the tutorial's loss: a factor ½ too many"),
                (d.pow(2).mean().sqrt().view(1), "that is the square root of the tutorial's loss"),
                (d.abs().mean().view(1), "those are absolute differences, not squared ones"),
                (d.mean().view(1), "the differences were averaged unsquared: positive and negative ones cancel"),
            ]) or f"for features of shape {tuple(features.shape)} expected {want.item():.6g}, got {out.item():.6g}"
            return report([hint], "")
        if not out.requires_grad:
            return report(["the result carries no gradient: it was cut off from the features on the way"], "")
        out.backward()
        if f.grad is None or not close(f.grad, 2 * (features - target) / features.numel(), rtol=1e-3, atol=1e-6):
            return report(["the gradient with respect to the features is not 2·(F − P)/(N·M)"], "")
    return report([], "your content loss matches helpers.losses.content_loss, gradient included")


def check_content_loss_value(answer, features, target):
    """Check a content loss worked out by hand for the given (small) feature maps."""
    from ..losses import content_loss

    want = content_loss(features, target).item()
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        return report([f"give one number, got {answer!r}"], "")
    if abs(answer - want) <= 1e-3 * max(1.0, abs(want)):
        return report([], f"the content loss is {want:g}")
    d = (features.float() - target.float()).flatten()
    n = d.numel()
    if answer == 0:
        return report(["0 would mean that F and P are equal, entry by entry; they are not"], "")
    for value, message in [
        (d.pow(2).sum().item(), "that is the sum of the squared differences, not their mean"),
        (0.5 * d.pow(2).sum().item(), "that is the paper's ½·Σ, not the tutorial's mean"),
        (d.abs().mean().item(), "that is the mean of the differences' sizes, unsquared"),
        (d.mean().item(), "that is the mean of the differences, unsquared: positive and negative ones cancel"),
    ]:
        if abs(answer - value) <= 1e-3 * max(1.0, abs(value)):
            return report([message], "")
    return report([f"{answer:g} is not the mean of the squared differences of F and P"], "")
