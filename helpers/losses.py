"""The loss terms of Gatys et al., one function each.

Notation of the paper: F^l is the feature map of the generated image at layer l, with
N_l channels ("filters") of M_l = H_l·W_l positions each; P^l is the same for the photo;
A^l is the Gram matrix of the painting. In PyTorch's layout (N, C, H, W) a feature map has
N_l = C channels and M_l = H·W positions (PyTorch's N is the batch). All losses are computed
in float32, even where the features come from a bfloat16 forward pass.
"""

import torch

from .device import bf16_supported


def _has_bmm_out_dtype():
    try:
        torch.ops.aten.bmm.dtype  # noqa: B018 (bfloat16 in, float32 out: PyTorch 2.8 and later)
        return True
    except (AttributeError, RuntimeError):
        return False


_BMM_OUT_DTYPE = _has_bmm_out_dtype()


class _Gram(torch.autograd.Function):
    """FᵀF for f of shape (N, M, C) (positions by channels), with a one-product backward.

    Autograd would treat F and Fᵀ as two inputs and spend two matrix products on the
    gradient; it is one: d⟨grad, FᵀF⟩/dF = F·(grad + gradᵀ). The product is float32 for
    any input: bfloat16 features on a recent GPU go to the tensor cores as they are, with
    float32 sums and a float32 result (the same numbers as converting them first, 8× faster on
    an H100 than float32 matrix arithmetic).
    """

    @staticmethod
    def forward(ctx, f):
        ctx.save_for_backward(f)
        if f.dtype == torch.float32:
            return torch.bmm(f.transpose(1, 2), f)
        return torch.bmm(f.transpose(1, 2), f, out_dtype=torch.float32)

    @staticmethod
    def backward(ctx, grad):
        (f,) = ctx.saved_tensors
        return torch.bmm(f, (grad + grad.transpose(1, 2)).to(f.dtype))


def gram_matrix(features):
    r"""Gram matrices of a batch of feature maps, normalized by N_l·M_l (C·H·W).

    .. math:: G^l_{ij} = \frac{1}{N_l M_l} \sum_{k=1}^{M_l} F^l_{ik} F^l_{jk}

    `features` has shape (N, C, H, W): N_l = C channels of M_l = H·W positions; the result
    has shape (N, C, C), one N_l × N_l matrix per image. Entry (i, j) is how strongly
    channels i and j fire together, averaged over positions: a summary of which features
    co-occur, with all spatial layout thrown away. The paper uses the raw sum; dividing by
    N_l·M_l keeps values comparable across layers and image sizes.
    Computed in float32 whatever the features' dtype.
    """
    n, c, h, w = features.shape
    # (N, H·W, C): a view, not a copy, of channels-last features (the engine's layout).
    f = features.permute(0, 2, 3, 1).reshape(n, h * w, c)
    # bfloat16 straight to the tensor cores where they take it (checked on an H200); anything
    # else, float16 on a T4 included, is converted to float32 first.
    if not (f.is_cuda and f.dtype == torch.bfloat16 and _BMM_OUT_DTYPE and bf16_supported(f.device)):
        f = f.float()
    return _Gram.apply(f) / (c * h * w)


def content_loss(features, target):
    r"""Content loss at one layer: the mean squared difference of feature maps.

    .. math:: \mathcal{L}_{content} = \frac{1}{N_l M_l} \sum_{i,j} (F^l_{ij} - P^l_{ij})^2

    The paper writes ½·Σ; taking the mean instead makes the value independent of the
    image size, so one content weight fits every size.
    """
    return (features.float() - target.float()).pow(2).mean()


def style_loss(features, target_grams, layer_weights=None):
    r"""Style loss: the weighted sum over layers of Gram-matrix mean squared errors.

    .. math:: \mathcal{L}_{style} = \sum_l w_l E_l, \qquad
              E_l = \frac{1}{N_l^2} \sum_{i,j} (G^l_{ij} - A^l_{ij})^2

    `features` maps layer names to feature maps of the generated image, `target_grams`
    the same names to the painting's Gram matrices A^l (from `gram_matrix`), and
    `layer_weights` names to w_l (default: equal weights 1/L, as in the paper). E_l here is
    the mean over the N_l × N_l entries. The paper's is
    :math:`\frac{1}{4 N_l^2 M_l^2} \sum_{i,j} (G^l_{ij} - A^l_{ij})^2` with raw sums in G and A,
    which are N_l·M_l times ours: so ours is the paper's E_l times the constant 4 / N_l².
    """
    if layer_weights is None:
        layer_weights = {name: 1.0 / len(target_grams) for name in target_grams}
    total = 0.0
    for name, weight in layer_weights.items():
        if weight == 0:
            continue
        g = gram_matrix(features[name])
        total = total + weight * (g - target_grams[name].float()).pow(2).mean()
    return total


def total_variation_loss(image):
    r"""Total variation: how much neighbouring pixels differ, a penalty on noise.

    .. math:: \mathcal{L}_{TV} = \frac{1}{N}\sum_{i,j} (x_{i,j+1} - x_{i,j})^2
                               + \frac{1}{N}\sum_{i,j} (x_{i+1,j} - x_{i,j})^2

    Means of squared differences between horizontal and vertical neighbours, over all
    channels of an image in [0, 1]. Not in Gatys et al. 2016; Mahendran & Vedaldi (2015)
    and Johnson et al. (2016) use it to smooth high-frequency artefacts.
    """
    x = image.float()
    dx = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()
    dy = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean()
    return dx + dy
