"""The optimization of Gatys et al.: change an image until its VGG-19 features match the
photo's content and its Gram matrices match the painting's style.

`stylize(content, style, **options)` does a whole run; `StyleTransfer` is the same engine
as an object that can be run, changed (weights, learning rate) and run again from where it
stopped, which is what the interactive studio needs.
"""

import copy
import dataclasses
import math
import threading
import time
import weakref
from dataclasses import dataclass, field

import torch

from . import color, losses, memory
from .device import bf16_supported, fp16_tensor_cores, pick_device
from .errors import StyleTransferError
from .color import PRESERVE_COLOR_MODES
from .images import MIN_SIDE_PX, check_size, load_image
from .network import (POOLING_NAMES, WEIGHTS_NAMES, check_layers, load_normalized_vgg19,
                      load_vgg19)

OPTIMIZERS = ("adam", "lbfgs")
INITS = ("content", "noise")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
PAPER_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


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
    learning_rate: float = 0.02  #: Adam: pixel change per step (image in [0, 1]); L-BFGS: 1
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
            value = getattr(self, name)
            if isinstance(value, str):
                value = tuple(v for v in value.replace(",", " ").split() if v)
            if value is not None:
                setattr(self, name, tuple(value))

    def validate(self):
        """Raise a one-line StyleTransferError naming the first bad value; return self."""
        check_size(self.size_px, "size")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise StyleTransferError(f"steps must be a positive whole number, got {self.steps!r}")
        check_layers(self.content_layers)
        check_layers(self.style_layers)
        for name in ("content_weight", "style_weight", "tv_weight"):
            _check_weight(name, getattr(self, name))
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise StyleTransferError(
                    f"{len(self.style_layer_weights)} style layer weights for "
                    f"{len(self.style_layers)} style layers: give one per layer"
                )
            for w in self.style_layer_weights:
                _check_weight("a style layer weight", w)
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
        if not (isinstance(self.learning_rate, (int, float)) and math.isfinite(self.learning_rate)
                and self.learning_rate > 0):
            raise StyleTransferError(f"learning rate must be a positive number, got {self.learning_rate!r}")
        if not (isinstance(self.style_scale, (int, float)) and math.isfinite(self.style_scale)
                and self.style_scale > 0):
            raise StyleTransferError(f"style scale must be a positive number, got {self.style_scale!r}")
        if not isinstance(self.report_every, int) or self.report_every < 1:
            raise StyleTransferError(f"report_every must be a positive whole number, got {self.report_every!r}")
        return self

    def replace(self, **changes):
        """A copy with some settings changed (unknown names are an error)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise StyleTransferError(f"unknown setting {sorted(unknown)[0]!r}")
        return dataclasses.replace(self, **changes)

    def as_dict(self):
        return dataclasses.asdict(self)


def _check_weight(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise StyleTransferError(f"{name.replace('_', ' ')} must be a number ≥ 0, got {value!r}")


def _check_choice(name, value, choices):
    if value not in choices:
        raise StyleTransferError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")


@dataclass
class Progress:
    """What the callback receives every `report_every` steps.

    `image` is the current image on the run's device (RGB in [0, 1]); copy it if you keep it.
    """

    step: int
    steps: int  #: the step this run will end at
    losses: dict  #: {"content", "style", "tv", "total"} as floats, weighted
    image: torch.Tensor
    elapsed_s: float
    seconds_per_step: float

    @property
    def eta_s(self):
        return (self.steps - self.step) * self.seconds_per_step


@dataclass
class StyleTransferResult:
    image: torch.Tensor  #: the final image (the best one if the run was stopped early), on the CPU
    history: list  #: one dict per step: step, content, style, tv, total
    config: StyleTransferConfig
    steps_done: int
    seconds: float
    stopped: str = None  #: None if the run finished, else why it stopped
    device: str = ""
    extra: dict = field(default_factory=dict)


_MODELS = {}


def cached_vgg19(weights, pooling, device, normalized=False):
    """`load_vgg19` (or `load_normalized_vgg19`), kept in memory per (weights, pooling, device,
    normalized) and in channels-last layout."""
    key = (weights, pooling, str(device), normalized)
    if key not in _MODELS:
        load = load_normalized_vgg19 if normalized else load_vgg19
        _MODELS[key] = load(weights, pooling, device).to(memory_format=torch.channels_last)
    return _MODELS[key]


_LOW_PRECISION = weakref.WeakKeyDictionary()


def low_precision_copy(model, dtype):
    """A copy of `model` whose convolution weights are stored in `dtype` (e.g. bfloat16), cached.

    Under autocast a float32 weight that does not require a gradient is cast again on every
    forward pass (autocast caches only the casts of trainable leaves): for VGG-19 that is
    20 million numbers per step. Casting once gives the same numbers without that cost.
    The preprocessing and everything outside the convolutions stay in float32.
    """
    copies = _LOW_PRECISION.setdefault(model, {})
    if dtype not in copies:
        low = copy.deepcopy(model)
        for module in low.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.to(dtype)
        copies[dtype] = low
    return copies[dtype]


class StyleTransfer:
    """The style-transfer engine: targets computed once, then `run(steps)` as often as you like.

    content, style: anything `load_image` accepts; `style` may also be a list of styles,
    mixed by `config.style_blend_weights`. `init_image` overrides `config.init`.
    Settings may be changed between runs with `update(...)`; weights and the learning rate
    take effect on the next step, and the image carries on from where it was.
    """

    def __init__(self, content, style, config=None, *, init_image=None, model=None, **options):
        self.config = (config or StyleTransferConfig()).replace(**options).validate()
        config = self.config
        self.device = pick_device(config.device)
        # A size that cannot fit is refused here, in one line, before anything large is allocated.
        memory.check_fits(config, content, style, device=self.device, precision=self._pick_precision())
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # the image size is fixed: let cuDNN pick its fastest kernels
        self.model = model if model is not None else cached_vgg19(
            config.weights, config.pooling, self.device, config.normalized_network)
        self.content = load_image(content, config.size_px).to(self.device)
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise StyleTransferError("no style image given")
        blend = config.style_blend_weights or (1.0,) * len(styles)
        if len(blend) != len(styles):
            raise StyleTransferError(
                f"{len(blend)} style blend weights for {len(styles)} style images: give one per style"
            )
        style_px = round(config.size_px * config.style_scale)
        if style_px < MIN_SIDE_PX:
            raise StyleTransferError(
                f"style scale {config.style_scale:g} makes the style image {style_px} px at size {config.size_px}: "
                f"VGG-19 needs at least {MIN_SIDE_PX} px; use a larger style scale or size"
            )
        self.styles = [load_image(s, style_px).to(self.device) for s in styles]
        # Colour preservation is a step before the run and one after it (see helpers.color).
        self.photo = self.content
        self.content, self.styles = color.prepare_inputs(config.preserve_color, self.content, self.styles)
        self.blend = [w / sum(blend) for w in blend]
        self.autocast_dtype = self._pick_precision()
        self._compute_targets()
        generator = torch.Generator().manual_seed(config.seed)
        if init_image is not None:
            h, w = self.content.shape[-2:]
            start = load_image(init_image)
            start = torch.nn.functional.interpolate(start, size=(h, w), mode="bilinear", align_corners=False)
        elif config.init == "noise":
            start = torch.rand(self.content.shape, generator=generator)
        else:
            start = self.content.detach().cpu().clone()
        start = color.prepare_start(config.preserve_color, start)
        layout = torch.channels_last if config.optimizer == "adam" else torch.contiguous_format
        # L-BFGS flattens gradients with .view(-1), which needs the standard layout.
        self.image = start.to(self.device).contiguous(memory_format=layout).requires_grad_(True)
        self.best_image = self.image.detach().clone()
        self.best_loss = torch.tensor(float("inf"), device=self.device)
        self.history = []
        self.step = 0
        self._make_optimizer()

    # --- setup ----------------------------------------------------------------------

    def _pick_precision(self):
        """The dtype of the network's forward pass, or None for float32.

        "auto": bfloat16 where it is fast (CPUs with AVX-512 BF16, GPUs from Ampere on),
        float16 on GPUs with tensor cores but no bfloat16 (a T4), float32 elsewhere. Gram
        matrices and losses are float32 in every case.
        """
        p = self.config.precision
        adam = self.config.optimizer == "adam"
        if p == "auto":
            p = ("bfloat16" if bf16_supported(self.device) else
                 "float16" if fp16_tensor_cores(self.device) and adam else "float32")
        if p == "float16" and not adam:
            raise StyleTransferError("precision float16 needs the Adam optimizer (its loss scaling "
                                     "does not fit L-BFGS's line search); use bfloat16 or float32")
        if p == "float32":
            return None
        if self.device.type not in ("cpu", "cuda"):
            raise StyleTransferError(f"precision {p} is not supported on {self.device.type}; use float32")
        return getattr(torch, p)

    def _features(self, image, layers):
        image = image.contiguous(memory_format=torch.channels_last)
        if self.autocast_dtype is None:
            return self.model(image, layers)
        # cache_enabled=False: autocast's cache of cast weights must be off inside a CUDA graph,
        # and is not needed here (the weights were cast once, by low_precision_copy).
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, cache_enabled=False):
            return low_precision_copy(self.model, self.autocast_dtype)(image, layers)

    @torch.no_grad()
    def _compute_targets(self):
        cfg = self.config
        content = self._features(self.content, cfg.content_layers)
        self.content_targets = {name: content[name].float() for name in cfg.content_layers}
        grams = {name: 0.0 for name in cfg.style_layers}
        for weight, style in zip(self.blend, self.styles):
            feats = self._features(style, cfg.style_layers)
            for name in cfg.style_layers:
                grams[name] = grams[name] + weight * losses.gram_matrix(feats[name])
        self.style_targets = grams
        # Our departure from the paper: each layer's loss is divided by the mean square of
        # its target, so that every layer starts on an equal footing whatever its scale.
        self.content_norms = {n: 1.0 / (t.pow(2).mean().item() + 1e-8) for n, t in self.content_targets.items()}
        self.style_norms = {n: 1.0 / (g.pow(2).mean().item() + 1e-8) for n, g in grams.items()}
        self.layers = list(dict.fromkeys(list(cfg.content_layers) + list(cfg.style_layers)))

    def _make_optimizer(self):
        cfg = self.config
        cuda = self.device.type == "cuda"
        # float16 has a narrow range: gradients this deep in VGG-19 (1e-8 and less) would
        # underflow to zero, so the loss is scaled up before backward and the gradient back
        # down before Adam's step (torch.amp.GradScaler, which also skips a step that overflows).
        self.scaler = torch.amp.GradScaler(self.device.type) if self.autocast_dtype == torch.float16 else None
        # A CUDA graph records one whole step (forward, backward, Adam, clamp) once and then
        # replays it with a single launch: at 512 px the GPU is otherwise left waiting for
        # Python to queue the step's few hundred small kernels.
        self.use_cuda_graph = cfg.cuda_graphs and cuda and cfg.optimizer == "adam" and self.scaler is None
        self._graph = None
        self._warmup_steps = 0
        if cfg.optimizer == "adam":
            # fused: one kernel per step on a GPU instead of a dozen small ones; capturable:
            # its step counter lives on the GPU, so that a graph can replay it
            self.optimizer = torch.optim.Adam([self.image], lr=cfg.learning_rate, fused=cuda or None,
                                              capturable=self.use_cuda_graph)
        else:
            self.optimizer = torch.optim.LBFGS([self.image], lr=cfg.learning_rate, max_iter=1,
                                               history_size=50, line_search_fn="strong_wolfe")

    def update(self, **changes):
        """Change settings between steps. Weights, learning rate and report_every take effect
        at once and keep the image and the optimizer's state; anything that changes the
        targets (layers, images, size) needs a new StyleTransfer."""
        live = {"content_weight", "style_weight", "tv_weight", "style_layer_weights",
                "learning_rate", "report_every", "steps"}
        bad = set(changes) - live
        if bad:
            raise StyleTransferError(
                f"{sorted(bad)[0]!r} cannot change during a run; start a new one"
            )
        self.config = self.config.replace(**changes).validate()
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.learning_rate
        self._graph = None  # weights and learning rate are recorded in it: record it again

    # --- the objective ----------------------------------------------------------------

    def style_layer_weights(self):
        cfg = self.config
        user = cfg.style_layer_weights or (1.0 / len(cfg.style_layers),) * len(cfg.style_layers)
        return {name: w * self.style_norms[name] for name, w in zip(cfg.style_layers, user)}

    def losses(self, image):
        """The weighted loss terms of `image`: {"content", "style", "tv", "total"} as tensors."""
        cfg = self.config
        # content_weight 0 (texture synthesis): skip the content layers, so the forward pass
        # stops at the deepest style layer (relu1_1 alone costs a fraction of relu4_2).
        layers = self.layers if cfg.content_weight else list(cfg.style_layers)
        feats = self._features(image, layers)
        if cfg.content_weight:
            content = sum(self.content_norms[n] * losses.content_loss(feats[n], self.content_targets[n])
                          for n in cfg.content_layers) / len(cfg.content_layers)
        else:
            content = torch.zeros((), device=image.device)
        style = losses.style_loss(feats, self.style_targets, self.style_layer_weights())
        tv = losses.total_variation_loss(image)
        terms = {"content": cfg.content_weight * content, "style": cfg.style_weight * style,
                 "tv": cfg.tv_weight * tv}
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms

    # --- running ------------------------------------------------------------------------

    def run(self, steps=None, callback=None, stop=None):
        """Take `steps` optimizer steps (default: config.steps); return a StyleTransferResult.

        callback(progress) is called every `report_every` steps and after the last one.
        stop: a threading.Event (or a function returning True) that ends the run early.
        Ctrl-C also ends it; a loss that becomes NaN or infinite ends it with the last
        good image. `result.stopped` says why a run ended early.
        """
        steps = self.config.steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise StyleTransferError(f"steps must be a positive whole number, got {steps!r}")
        end = self.step + steps
        should_stop = stop.is_set if isinstance(stop, threading.Event) else (stop or (lambda: False))
        pending, stopped, start = [], None, time.perf_counter()
        first_step = self.step
        try:
            while self.step < end:
                if should_stop():
                    stopped = "stopped"
                    break
                terms = self._one_step()
                self.step += 1
                pending.append((self.step, torch.stack([terms[k].detach() for k in ("content", "style", "tv", "total")])))
                if self.step % self.config.report_every == 0 or self.step == end:
                    stopped = self._flush(pending)
                    pending = []
                    if stopped:
                        break
                    if callback is not None:
                        elapsed = time.perf_counter() - start
                        callback(Progress(self.step, end, dict(self.history[-1]), self.shown(self.image.detach()),
                                          elapsed, elapsed / max(1, self.step - first_step)))
        except KeyboardInterrupt:
            stopped = "interrupted"
        except (RuntimeError, MemoryError) as err:  # out of memory: a state, like Ctrl-C, not a crash
            if not memory.is_out_of_memory(err):
                raise
            stopped = memory.out_of_memory_message(err, self.device, self.config.size_px, self.step + 1)
        if memory.ran_out_of_memory(stopped):
            self.optimizer.zero_grad(set_to_none=True)
            memory.release_memory(self.device)
        if pending:
            stopped = self._flush(pending) or stopped
        if stopped:
            final = self.best_image
        else:
            final = self.image.detach()
        return StyleTransferResult(
            image=self.shown(final.detach().float()).cpu().clamp(0, 1).contiguous(), history=list(self.history),
            config=self.config, steps_done=self.step, seconds=time.perf_counter() - start,
            stopped=stopped, device=str(self.device),
        )

    def shown(self, image):
        """The picture to show or save: with preserve_color="luminance" the optimized (grey)
        image's luminance with the photo's colours, otherwise `image` itself."""
        return color.finish(self.config.preserve_color, image, self.photo)

    def _one_step(self):
        if self.config.optimizer == "adam":
            return self._graph_step() if self.use_cuda_graph else self._adam_step()
        box = {}

        def closure():
            # L-BFGS evaluates this at the current image and at its line search's trial
            # points: remember the best of all of them, each with the image it was computed for.
            self.optimizer.zero_grad(set_to_none=True)
            t = self.losses(self.image)
            t["total"].backward()
            self._remember_best(t["total"])
            box.setdefault("terms", t)
            return t["total"]

        self.optimizer.step(closure)
        with torch.no_grad():
            self.image.clamp_(0, 1)
        return {name: value.detach() for name, value in box["terms"].items()}

    def _adam_step(self):
        """One Adam step on the image, then clip it to [0, 1]; returns the loss terms."""
        self.optimizer.zero_grad(set_to_none=True)
        terms = self.losses(self.image)
        self._remember_best(terms["total"])
        if self.scaler is None:
            terms["total"].backward()
            self.optimizer.step()
        else:
            self.scaler.scale(terms["total"]).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        with torch.no_grad():
            self.image.clamp_(0, 1)
        # Detached: holding on to this step's autograd graph into the next step would keep
        # its nodes alive across streams (a warning, and a hazard, with CUDA graphs).
        return {name: value.detach() for name, value in terms.items()}

    GRAPH_WARMUP_STEPS = 2

    def _graph_step(self):
        """`_adam_step` on a GPU, replayed from a CUDA graph after a few ordinary steps.

        The first steps run as usual on a side stream (cuDNN picks its kernels, the memory
        allocator settles), then one step is recorded and replayed from then on. The graph
        holds its tensors in place: the image, its gradient, Adam's state and the loss terms
        are the same memory at every replay. Changing a weight records it again (`update`).
        """
        if self._graph is None and self._warmup_steps < self.GRAPH_WARMUP_STEPS:
            self._warmup_steps += 1
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                terms = self._adam_step()
            torch.cuda.current_stream(self.device).wait_stream(side)
            return terms
        if self._graph is None:
            self.optimizer.zero_grad(set_to_none=True)  # the graph's backward then owns .grad
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    terms = self._adam_step()
            except torch.cuda.OutOfMemoryError:
                # Recording needs the step's memory a second time: carry on without a graph.
                self.use_cuda_graph = False
                del graph
                self.optimizer.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                return self._adam_step()
            self._graph, self._graph_terms = graph, terms
        self._graph.replay()
        return self._graph_terms

    @torch.no_grad()
    def _remember_best(self, total):
        # The loss was computed for the image before this step: keep that image if it is the
        # best so far. torch.where avoids a GPU->CPU sync on every step; copy_ keeps the two
        # tensors in place, as a CUDA graph replaying this needs.
        better = torch.isfinite(total) & (total < self.best_loss)
        self.best_loss.copy_(torch.where(better, total.detach(), self.best_loss))
        self.best_image.copy_(torch.where(better, self.image.detach(), self.best_image))

    def _flush(self, pending):
        values = torch.stack([v for _, v in pending]).float().cpu().tolist()
        for (step, _), (c, s, tv, total) in zip(pending, values):
            if not all(math.isfinite(x) for x in (c, s, tv, total)):
                what = "NaN" if math.isnan(total) else "infinite"
                if not self.history:
                    return (f"the loss is {what} from the first step: a weight is too large "
                            f"(content {self.config.content_weight:g}, style {self.config.style_weight:g}, "
                            f"tv {self.config.tv_weight:g}); lower it. Kept the starting image.")
                return (
                    f"the loss became {what} at step {step}: the learning rate "
                    f"{self.config.learning_rate:g} is probably too high for {self.config.optimizer}; "
                    "lower it (Adam: try 0.02, L-BFGS: 1). Kept the last good image."
                )
            self.history.append({"step": step, "content": c, "style": s, "tv": tv, "total": total})
        return None


def stylize(content, style, config=None, *, callback=None, stop=None, init_image=None, model=None, **options):
    """Paint `content` in the style of `style`; return a StyleTransferResult.

    Options are the fields of `StyleTransferConfig` (size_px, steps, content_weight,
    style_weight, tv_weight, optimizer, learning_rate, init, seed, device, ...). Content
    and style may differ in size and aspect ratio: the style image is only ever seen
    through its Gram matrices, which do not depend on layout.
    """
    config = (config or StyleTransferConfig()).replace(**options)
    torch.manual_seed(config.seed)
    engine = StyleTransfer(content, style, config, init_image=init_image, model=model)
    return engine.run(callback=callback, stop=stop)
