"""The yardstick: style transfer written the classic way, as the seed tutorial does it.

This is the Udacity-style loop this project grew from, kept as it was written so that the
benchmark can say how much faster the helpers are. It is never imported by `helpers/`.
What is classic about it, on purpose:

- every step runs the WHOLE VGG-19 feature stack (all 37 layers, up to pool5), walking
  `model._modules.items()` and keeping the outputs whose index is in a dict of names;
- the stored "conv" outputs are overwritten by torchvision's in-place ReLUs, so the losses
  really use relu4_2, relu1_1, ... (a well-known quirk of that tutorial, kept);
- content conv4_2; style conv1_1..conv5_1 with layer weights 1, 0.75, 0.2, 0.2, 0.2;
  alpha 1, beta 1e6; the Gram matrix is the raw (d, h·w) product and each layer's
  mean squared Gram error is divided by d·h·w; Adam, lr 0.003, from the content image;
- float32, the default memory layout, no clamping of the image during the run.

One change from the tutorial, so that only the loop differs from the helpers: the VGG-19
weights and preprocessing are the helpers' (the original Caffe weights, BGR 0..255 minus
the mean), and the image being optimized is RGB in [0, 1] like the helpers' image. The
tutorial used torchvision's weights with ImageNet mean/std on a normalized image.
"""

import copy

import torch

#: The tutorial's layer names for the indices of torchvision's vgg19().features.
LAYERS = {"0": "conv1_1", "5": "conv2_1", "10": "conv3_1", "19": "conv4_1", "21": "conv4_2", "28": "conv5_1"}
STYLE_WEIGHTS = {"conv1_1": 1.0, "conv2_1": 0.75, "conv3_1": 0.2, "conv4_1": 0.2, "conv5_1": 0.2}
CONTENT_WEIGHT = 1  # alpha
STYLE_WEIGHT = 1e6  # beta
LEARNING_RATE = 0.003


def get_features(image, model, layers=None):
    """Run an image forward through the whole model and keep the outputs of a set of layers."""
    if layers is None:
        layers = LAYERS
    features = {}
    x = image
    for name, layer in model._modules.items():
        x = layer(x)
        if name in layers:
            features[layers[name]] = x
    return features


def gram_matrix(tensor):
    """The raw Gram matrix of a (1, d, h, w) feature map: (d, h·w) times its transpose."""
    _, d, h, w = tensor.size()
    tensor = tensor.view(d, h * w)
    return torch.mm(tensor, tensor.t())


class ReferenceLoop:
    """The classic loop. `features` is a torchvision-style VGG-19 `features` stack (in-place
    ReLUs), `preprocess` maps RGB in [0, 1] to what those weights expect."""

    def __init__(self, content, style, features, preprocess):
        self.vgg = copy.deepcopy(features).eval()
        for param in self.vgg.parameters():
            param.requires_grad_(False)
        self.preprocess = preprocess
        with torch.no_grad():
            self.content_features = get_features(self.preprocess(content), self.vgg)
            style_features = get_features(self.preprocess(style), self.vgg)
            self.style_grams = {layer: gram_matrix(style_features[layer]) for layer in style_features}
        self.target = content.clone().requires_grad_(True)
        self.optimizer = torch.optim.Adam([self.target], lr=LEARNING_RATE)
        self.step_count = 0

    def losses(self, image):
        """The tutorial's loss of `image` (RGB, [0, 1]): {"content", "style", "total"} as tensors,
        content = mean (F - P)² at conv4_2, style = β Σ_l w_l mean (G - A)² / (d·h·w)."""
        target_features = get_features(self.preprocess(image), self.vgg)
        content_loss = torch.mean((target_features["conv4_2"] - self.content_features["conv4_2"]) ** 2)
        style_loss = 0
        for layer in STYLE_WEIGHTS:
            target_feature = target_features[layer]
            target_gram = gram_matrix(target_feature)
            _, d, h, w = target_feature.shape
            style_gram = self.style_grams[layer]
            layer_style_loss = STYLE_WEIGHTS[layer] * torch.mean((target_gram - style_gram) ** 2)
            style_loss += layer_style_loss / (d * h * w)
        return {"content": CONTENT_WEIGHT * content_loss, "style": STYLE_WEIGHT * style_loss,
                "total": CONTENT_WEIGHT * content_loss + STYLE_WEIGHT * style_loss}

    def step(self):
        """One Adam step; returns the total loss as a tensor (the tutorial printed it every
        `show_every` steps)."""
        total_loss = self.losses(self.target)["total"]
        self.optimizer.zero_grad()
        total_loss.backward()
        self.optimizer.step()
        self.step_count += 1
        return total_loss.detach()

    def image(self):
        """The current image, clipped to [0, 1] for display as the tutorial's im_convert did."""
        return self.target.detach().clamp(0, 1)
