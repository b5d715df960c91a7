"""The loss terms of Gatys et al., one function each, and the loss both methods minimize.

Notation of the paper: F^l is the feature map of the generated image at layer l, with
N_l channels ("filters") of M_l = H_l·W_l positions each; P^l is the same for the photo;
A^l is the Gram matrix of the painting. In PyTorch's layout (N, C, H, W) a feature map has
N_l = C channels and M_l = H·W positions (PyTorch's N is the batch). All losses are computed
in float32, even where the features come from a bfloat16 forward pass.

`StyleTransferLoss` puts the terms together, weighted and normalized per layer: the
optimization (`optimization.StyleTransfer`) and the real-time network's training
(`realtime.Trainer`) both call it, so a weight means the same thing in both.
"""

import torch


def gram_matrix(features):
    r"""Gram matrices of a batch of feature maps, normalized by N_l·M_l (C·H·W).

    .. math:: G^l_{ij} = \frac{1}{N_l M_l} \sum_{k=1}^{M_l} F^l_{ik} F^l_{jk}

    `features` has shape (N, C, H, W): N_l = C channels of M_l = H·W positions; the result
    has shape (N, C, C), one N_l × N_l matrix per image. Entry (i, j) is how strongly
    channels i and j fire together, averaged over positions: a summary of which features
    co-occur, with all spatial layout thrown away. The paper uses the raw sum; dividing by
    N_l·M_l keeps values comparable across layers and image sizes.
    Computed in float32 whatever the features' dtype. (The engine uses
    `speed.fast_gram_matrix`: the same numbers, with a cheaper backward pass.)
    """
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w).float()  # F^l: one row of M_l positions per channel
    return f @ f.transpose(1, 2) / (c * h * w)


def content_loss(features, target):
    r"""Content loss at one layer: the mean squared difference of feature maps.

    .. math:: \mathcal{L}_{content} = \frac{1}{N_l M_l} \sum_{i,j} (F^l_{ij} - P^l_{ij})^2

    The paper writes ½·Σ; taking the mean instead makes the value independent of the
    image size, so one content weight fits every size.
    """
    return (features.float() - target.float()).pow(2).mean()


def style_loss(features, target_grams, layer_weights=None, gram=gram_matrix):
    r"""Style loss: the weighted sum over layers of Gram-matrix mean squared errors.

    .. math:: \mathcal{L}_{style} = \sum_l w_l E_l, \qquad
              E_l = \frac{1}{N_l^2} \sum_{i,j} (G^l_{ij} - A^l_{ij})^2

    `features` maps layer names to feature maps of the generated image, `target_grams`
    the same names to the painting's Gram matrices A^l (from `gram_matrix`), and
    `layer_weights` names to w_l (default: equal weights 1/L, as in the paper). E_l here is
    the mean over the N_l × N_l entries. The paper's is
    :math:`\frac{1}{4 N_l^2 M_l^2} \sum_{i,j} (G^l_{ij} - A^l_{ij})^2` with raw sums in G and A,
    which are N_l·M_l times ours: so ours is the paper's E_l times the constant 4 / N_l².
    `gram` computes G (the engine passes `speed.fast_gram_matrix`, the same numbers faster).
    """
    if layer_weights is None:
        layer_weights = {name: 1.0 / len(target_grams) for name in target_grams}
    total = 0.0
    for name, weight in layer_weights.items():
        if weight == 0:
            continue
        g = gram(features[name])
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


def normalization(target):
    """1 / the mean square of a layer's target: our departure from the paper. Each layer's loss
    is divided by it, so that every layer starts on an equal footing whatever its scale."""
    return 1.0 / (target.float().pow(2).mean().item() + 1e-8)


def layer_shares(config):
    """w_l as given: `config.style_layer_weights`, or the paper's equal 1/L, by layer name."""
    user = config.style_layer_weights or (1.0 / len(config.style_layers),) * len(config.style_layers)
    return dict(zip(config.style_layers, user))


class StyleTransferLoss:
    r"""The loss both methods minimize, as three weighted terms:

    .. math:: \mathcal{L} = \alpha \frac{1}{|C|}\sum_{l \in C} \frac{\text{mean}(F^l - P^l)^2}{\text{mean}(P^{l\,2})}
              + \beta \sum_{l \in S} w_l \frac{\text{mean}(G^l - A^l)^2}{\text{mean}(A^{l\,2})}
              + \gamma\,\mathcal{L}_{TV}

    α, β, γ are `config.content_weight`, `style_weight` and `tv_weight`; C and S its content
    and style layers; w_l its `style_layer_weights` (default the paper's equal 1/L). Each
    layer's term is divided by the mean square of its target (`normalization`), so that every
    layer starts on an equal footing whatever its scale: our departure from the paper.

    style_targets: {layer: A^l}, the painting's Gram matrices. content_targets: {layer: P^l},
    the photo's features, when they are fixed (the optimization); the training gives each
    batch's own targets to every call instead. gram: how G is computed from the features.
    The weights are read from the `config` given to each call, so they can change between
    steps (the studio's sliders).
    """

    def __init__(self, style_targets, content_targets=None, gram=gram_matrix):
        self.style_targets = style_targets
        self.style_norms = {name: normalization(a) for name, a in style_targets.items()}
        self.content_targets = content_targets
        self.content_norms = {name: normalization(p) for name, p in (content_targets or {}).items()}
        self.gram = gram

    def style_layer_weights(self, config):
        """w_l times the layer's normalization (1 / the mean square of its target)."""
        return {name: w * self.style_norms[name] for name, w in layer_shares(config).items()}

    def content(self, features, config, targets=None):
        """The content term before its weight: the mean over content layers of each layer's
        normalized mean squared error. `targets`: this batch's own P^l (normalized by their own
        mean square), or None for the fixed targets given when the loss was built."""
        if targets is None:
            parts = [self.content_norms[n] * content_loss(features[n], self.content_targets[n])
                     for n in config.content_layers]
        else:
            parts = [content_loss(features[n], targets[n]) / (targets[n].float().pow(2).mean() + 1e-8)
                     for n in config.content_layers]
        return sum(parts) / len(parts)

    def __call__(self, features, image, config, content_targets=None):
        """{"content", "style", "tv", "total"}: the weighted terms for `image`, whose features at
        the content and style layers are `features`. With content weight 0 (texture synthesis)
        the content layers are not needed and the content term is 0."""
        if config.content_weight:
            content = self.content(features, config, content_targets)
        else:
            content = torch.zeros((), device=image.device)
        style = style_loss(features, self.style_targets, self.style_layer_weights(config), self.gram)
        tv = total_variation_loss(image)
        terms = {"content": config.content_weight * content, "style": config.style_weight * style,
                 "tv": config.tv_weight * tv}
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms
