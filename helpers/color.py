"""Colour preservation (Gatys, Ecker, Bethge, Hertzmann & Shechtman 2017, "Controlling
Perceptual Factors in Neural Style Transfer", section 5): keep the photo's colours and
take only the painting's brush strokes. Two ways, both run around the engine:

- "luminance": transfer style on the luminance channel only, then put the photo's colour
  (chroma) back: `luminance_inputs` before the run, `combine_luminance` after it.
- "histogram": recolour the style image so its colour mean and covariance are the
  photo's (`match_color_histogram`), then transfer as usual.

Every image here is RGB in [0, 1] of shape (N, 3, H, W).
"""

import torch

from .config import PRESERVE_COLOR_MODES  # noqa: F401  (every setting's choices are listed there)
from .errors import StyleTransferError

#: RGB -> YIQ (NTSC). Row 0 is the luminance Y = .299 R + .587 G + .114 B; I and Q carry colour.
RGB_TO_YIQ = torch.tensor([
    [0.299, 0.587, 0.114],
    [0.596, -0.274, -0.322],
    [0.211, -0.523, 0.312],
])
#: The exact inverse of RGB_TO_YIQ (computed, not the rounded textbook table).
YIQ_TO_RGB = torch.linalg.inv(RGB_TO_YIQ.double()).float()


def _mix_channels(matrix, image):
    """out[c] = sum_k matrix[c, k] · image[k] at every pixel."""
    return torch.einsum("ck,nkhw->nchw", matrix.to(image.device, image.dtype), image)


def rgb_to_yiq(image):
    """RGB in [0, 1] -> YIQ: Y = .299 R + .587 G + .114 B, I = .596 R − .274 G − .322 B,
    Q = .211 R − .523 G + .312 B. Y is in [0, 1]; I and Q are signed."""
    return _mix_channels(RGB_TO_YIQ, image)


def yiq_to_rgb(yiq):
    """YIQ -> RGB with the inverse matrix (not clamped: clamp if you need [0, 1])."""
    return _mix_channels(YIQ_TO_RGB, yiq)


def luminance(image):
    """The luminance Y = .299 R + .587 G + .114 B of an RGB image, shape (N, 1, H, W)."""
    return rgb_to_yiq(image)[:, :1]


def gray(lum):
    """A one-channel luminance (N, 1, H, W) as a grey RGB image (N, 3, H, W), which VGG-19 can take."""
    return lum.expand(-1, 3, -1, -1).contiguous()


def match_luminance(style_lum, content_lum):
    """Shift and scale the style's luminance to the photo's mean and standard deviation:

        L_s' = (σ_c / σ_s) · (L_s − μ_s) + μ_c

    (eq. 5 of Gatys et al. 2017), so that the painting's brightness and contrast do not
    fight the photo's. Clamped to [0, 1].
    """
    mu_s, sigma_s = style_lum.mean(), style_lum.std()
    mu_c, sigma_c = content_lum.mean(), content_lum.std()
    return ((sigma_c / sigma_s.clamp_min(1e-6)) * (style_lum - mu_s) + mu_c).clamp(0, 1)


def luminance_inputs(content, styles):
    """Luminance-only transfer, the step before the run: the photo and the styles as grey
    images of their luminance, each style's luminance matched to the photo's (mean and std).

    Returns (grey content, [grey styles]). After the run, `combine_luminance` gives colour back.
    """
    content_lum = luminance(content)
    return gray(content_lum), [gray(match_luminance(luminance(s), content_lum)) for s in styles]


def combine_luminance(result, content):
    """Luminance-only transfer, the step after the run: the result's luminance Y with the
    photo's chroma I and Q, back in RGB and clamped to [0, 1].

        RGB = M⁻¹ · (Y_result, I_content, Q_content)

    `result` and `content` must have the same height and width.
    """
    if result.shape[-2:] != content.shape[-2:]:
        raise StyleTransferError(
            f"cannot combine a {tuple(result.shape[-2:])} result with a {tuple(content.shape[-2:])} photo: "
            "resize one to the other first"
        )
    content_yiq = rgb_to_yiq(content.to(result.device, result.dtype))
    yiq = torch.cat([luminance(result), content_yiq[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 1)


def color_statistics(image):
    """The mean μ (3,) and covariance Σ (3, 3) of an image's RGB pixel values."""
    pixels = image.detach().double().permute(1, 0, 2, 3).reshape(3, -1)
    mean = pixels.mean(dim=1)
    centered = pixels - mean[:, None]
    return mean, centered @ centered.T / pixels.shape[1]


def _sqrt_psd(matrix, inverse=False, eps=1e-5):
    """The symmetric square root Σ^½ (or Σ^−½) of a covariance matrix, by eigendecomposition."""
    values, vectors = torch.linalg.eigh(matrix)
    values = values.clamp_min(eps)
    power = -0.5 if inverse else 0.5
    return vectors @ torch.diag(values ** power) @ vectors.T


def match_color_histogram(source, target, clamp=True):
    """Recolour `source` so that its RGB mean and covariance are those of `target`:

        x' = A (x − μ_s) + μ_t,   A = Σ_t^½ Σ_s^−½

    (the linear colour transfer of Gatys et al. 2017, section 5.2, with symmetric matrix
    square roots). Then A Σ_s Aᵀ = Σ_t: the new colours have exactly the target's mean and
    covariance, up to the final clamp to [0, 1]. Used on the style image before the run,
    with the photo as target.
    """
    mu_s, cov_s = color_statistics(source)
    mu_t, cov_t = color_statistics(target)
    a = _sqrt_psd(cov_t) @ _sqrt_psd(cov_s, inverse=True)
    x = source.double()
    out = torch.einsum("ck,nkhw->nchw", a.to(x.device), x - mu_s.to(x.device).view(1, 3, 1, 1))
    out = (out + mu_t.to(x.device).view(1, 3, 1, 1)).to(source.dtype)
    return out.clamp(0, 1) if clamp else out


def check_mode(mode):
    """Raise a clear error unless `mode` is one of "none", "luminance", "histogram"."""
    if mode not in PRESERVE_COLOR_MODES:
        raise StyleTransferError(
            f"unknown preserve_color {mode!r}: choose one of {', '.join(PRESERVE_COLOR_MODES)}"
        )
    return mode


def prepare_inputs(mode, content, styles):
    """What the network sees, for each colour mode: returns (content, styles).

    "none": unchanged; "histogram": each style recoloured to the photo's colour statistics;
    "luminance": grey luminance images (see `luminance_inputs`).
    """
    check_mode(mode)
    if mode == "histogram":
        return content, [match_color_histogram(s, content) for s in styles]
    if mode == "luminance":
        return luminance_inputs(content, styles)
    return content, list(styles)


def prepare_start(mode, image):
    """The starting image for the run: grey luminance in "luminance" mode, else unchanged."""
    return gray(luminance(image)) if mode == "luminance" else image


def finish(mode, image, content):
    """The picture to show or save: in "luminance" mode the result's luminance with the
    photo's colours (`combine_luminance`), else the image itself."""
    return combine_luminance(image, content) if mode == "luminance" else image
