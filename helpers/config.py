"""Every setting of a run (`StyleTransferConfig`) and the values each may take.

This module imports nothing heavy, PyTorch least of all, so that `python -m helpers --help`
can show the defaults at once; `validate()` imports its checkers only when it runs.
"""

import dataclasses
import math
from dataclasses import dataclass

from .errors import StyleTransferError
from .layers import check_layers

WEIGHTS_NAMES = ("caffe", "torchvision", "random")
POOLING_NAMES = ("max", "avg")
PRESERVE_COLOR_MODES = ("none", "luminance", "histogram")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
OPTIMIZERS = ("adam", "lbfgs")
INITS = ("content", "noise")
PAPER_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
#: Each optimizer's own learning rate. Adam's is the largest pixel change per step (the
#: image is in [0, 1]); L-BFGS's scales the step its line search starts from, and 1 is the
#: full quasi-Newton step.
DEFAULT_LEARNING_RATES = {"adam": 0.02, "lbfgs": 1.0}


@dataclass
class StyleTransferConfig:
    """Every setting of a run, with defaults that give a good picture in a few hundred steps.

    Weights are relative: each layer's loss is divided by the mean square of its own target
    once, before the run (see `StyleTransfer`), so the same weights work for both weight
    files and for every image size. This normalization is ours, not the paper's.
    """

    size_px: int = 256  #: long edge of the result in pixels
    steps: int = 300
    content_layers: tuple = ("relu4_2",)  #: the paper's content layer
    style_layers: tuple = PAPER_STYLE_LAYERS  #: the paper's style layers
    style_layer_weights: tuple = None  #: one per style layer; None = equal (1/L each)
    content_weight: float = 1.0  #: alpha in the paper
    style_weight: float = 30.0  #: beta in the paper (30: the paper's α/β = 1e-3 balance, see benchmarks/)
    tv_weight: float = 1.0  #: total variation, against high-frequency noise
    optimizer: str = "adam"  #: "adam" or "lbfgs"
    learning_rate: float = None  #: None: the optimizer's own (DEFAULT_LEARNING_RATES: Adam 0.02, L-BFGS 1)
    init: str = "content"  #: "content" or "noise" (or pass init_image= to stylize)
    seed: int = 0  #: for the noise init and anything random
    device: str = "auto"  #: "auto" (cuda > mps > cpu), "cuda", "mps" or "cpu"
    weights: str = "caffe"  #: "caffe" (original VGG-19), "torchvision" or "random"
    pooling: str = "max"  #: "max" or "avg"
    style_scale: float = 1.0  #: style image long edge = size_px × style_scale
    style_blend_weights: tuple = None  #: one per style image when several are given
    preserve_color: str = "none"  #: "none", "luminance" (style on luminance only) or "histogram" (style recoloured to the photo's)
    normalized_network: bool = False  #: the paper's VGG-19, each filter rescaled to mean activation 1
    precision: str = "auto"  #: "auto", "float32", "bfloat16" or "float16" (features only; see below)
    cuda_graphs: bool = True  #: on a GPU, record one Adam step as a CUDA graph and replay it
    report_every: int = 10  #: call the callback every this many steps

    def __post_init__(self):
        for name in ("content_layers", "style_layers", "style_layer_weights", "style_blend_weights"):
            value = getattr(self, name, None)
            if isinstance(value, str):
                value = tuple(v for v in value.replace(",", " ").split() if v)
            if value is not None:
                setattr(self, name, tuple(value))

    def validate(self):
        """Raise a one-line StyleTransferError naming the first bad value; return self."""
        from .device import pick_device  # these import PyTorch
        from .images import check_size

        check_size(self.size_px, "size")
        _check_whole("steps", self.steps)
        _check_loss(self)
        if self.style_blend_weights is not None:
            for w in self.style_blend_weights:
                _check_weight("a style blend weight", w)
            if sum(self.style_blend_weights) <= 0:
                raise StyleTransferError("style blend weights must not all be zero")
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("init", self.init, INITS)
        _check_choice("weights", self.weights, WEIGHTS_NAMES)
        _check_choice("pooling", self.pooling, POOLING_NAMES)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("preserve_color", self.preserve_color, PRESERVE_COLOR_MODES)
        for name in ("normalized_network", "cuda_graphs"):
            if not isinstance(getattr(self, name), bool):
                raise StyleTransferError(f"{name} must be True or False, got {getattr(self, name)!r}")
        pick_device(self.device)
        if self.learning_rate is not None:
            _check_positive("learning rate", self.learning_rate)
        _check_positive("style scale", self.style_scale)
        _check_whole("report_every", self.report_every)
        return self

    def lr(self):
        """The learning rate this run uses: `learning_rate`, or the optimizer's own default."""
        if self.learning_rate is None:
            return DEFAULT_LEARNING_RATES[self.optimizer]
        return self.learning_rate

    def replace(self, **changes):
        """A copy with some settings changed (unknown names are an error)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise StyleTransferError(f"unknown setting {sorted(unknown)[0]!r}")
        return dataclasses.replace(self, **changes)

    def as_dict(self):
        return dataclasses.asdict(self)


def _check_loss(config):
    """The settings of the loss that a run and a training share: layers and weights."""
    check_layers(config.content_layers)
    check_layers(config.style_layers)
    for name in ("content_weight", "style_weight", "tv_weight"):
        _check_weight(name, getattr(config, name))
    if config.style_layer_weights is not None:
        if len(config.style_layer_weights) != len(config.style_layers):
            raise StyleTransferError(
                f"{len(config.style_layer_weights)} style layer weights for "
                f"{len(config.style_layers)} style layers: give one per layer"
            )
        for w in config.style_layer_weights:
            _check_weight("a style layer weight", w)


def _check_whole(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise StyleTransferError(f"{name} must be a positive whole number, got {value!r}")


def _check_positive(name, value):
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
        raise StyleTransferError(f"{name} must be a positive number, got {value!r}")


def _check_weight(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise StyleTransferError(f"{name.replace('_', ' ')} must be a number ≥ 0, got {value!r}")


def _check_choice(name, value, choices):
    if value not in choices:
        raise StyleTransferError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")


@dataclass
class TrainingConfig:
    """Every setting of training a real-time style network (`helpers.realtime`).

    The loss is the optimization's (same layers, same per-layer normalization, same meaning of
    the weights); `style_px` plays the part of the optimization's size: the painting's Gram
    matrices are taken at that size, and the network learns strokes of that scale in pictures
    of about `photo_px`.
    """

    steps: int = 1000
    batch_size: int = 4
    photo_px: int = 256  #: each photo's long edge before cropping: the size the network is meant for
    crop_px: int = 128  #: the square crops it is trained on
    style_px: int = 256  #: the painting's long edge for its Gram matrices
    #: the optimization's; Johnson et al. use relu2_2 (paper) or relu3_3 (code): not yet compared
    #: at this balance (an earlier comparison had a bug and sat within the noise)
    content_layers: tuple = ("relu4_2",)
    #: relu1_1 ... relu5_1, the optimization's layers, with most weight on relu4_1 and relu5_1.
    #: relu5_1 is about 70 % of the held-out style loss (the optimization's own measure) of a
    #: network trained without it; with it, 600 steps from scratch kept more of the photo and
    #: reached less than half the style loss of the four-layer recipe (notes/issue22.md, r12/r13)
    style_layers: tuple = PAPER_STYLE_LAYERS
    style_layer_weights: tuple = (0.05, 0.2, 0.15, 0.35, 0.25)
    content_weight: float = 1.0
    #: 3, not the optimization's 30: measured on held-out photos (notes/issue22.md), 30 and more
    #: erased the photo before the network had learned to keep it; 10 kept less photo and no
    #: more style than 3
    style_weight: float = 3.0
    tv_weight: float = 1.0
    learning_rate: float = 1e-3  #: Adam on the network's weights (Johnson et al.)
    #: content only (style weight 0) for this many steps, then the style ramped in linearly over
    #: as many again: the network first learns to pass the photo through (not in Johnson et al.)
    warmup_steps: int = 100
    width: int = 32  #: channels of the first convolution (Johnson et al.: 32)
    residual_blocks: int = 5
    norm: str = "instance"  #: "instance" or "batch"
    skip: bool = False  #: output = photo + the network's change (see TransformNet)
    weights: str = "caffe"  #: the loss network's weights
    precision: str = "auto"  #: the loss network's forward pass, as in StyleTransferConfig
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 100
    report_every: int = 10

    __post_init__ = StyleTransferConfig.__post_init__

    def validate(self):
        """Raise a one-line StyleTransferError naming the first bad value; return self."""
        from .device import pick_device
        from .images import check_size

        for name in ("steps", "batch_size", "width", "residual_blocks", "checkpoint_every", "report_every"):
            _check_whole(name.replace("_", " "), getattr(self, name))
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise StyleTransferError(f"warmup steps must be a whole number >= 0, got {self.warmup_steps!r}")
        for name in ("photo_px", "crop_px", "style_px"):
            check_size(getattr(self, name), name.replace("_px", " size"))
        if self.crop_px > self.photo_px:
            raise StyleTransferError(f"crop size {self.crop_px} px is larger than the photo size "
                                     f"{self.photo_px} px: use a smaller crop or a larger photo size")
        _check_loss(self)
        _check_positive("learning rate", self.learning_rate)
        _check_choice("norm", self.norm, ("instance", "batch"))
        if not isinstance(self.skip, bool):
            raise StyleTransferError(f"skip must be True or False, got {self.skip!r}")
        _check_choice("weights", self.weights, WEIGHTS_NAMES)
        _check_choice("precision", self.precision, PRECISIONS)
        pick_device(self.device)
        return self

    def style_weight_at(self, step):
        """The style weight of training step `step` (0-based): 0 during the content-only
        warm-up, then ramped linearly to `style_weight` over `warmup_steps` more steps."""
        w = self.warmup_steps
        if not w:
            return self.style_weight
        return self.style_weight * min(1.0, max(0, step - w + 1) / w)

    replace = StyleTransferConfig.replace
    as_dict = StyleTransferConfig.as_dict
