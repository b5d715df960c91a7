"""How much memory a run needs, how much the machine has free, and what to do when it runs out.

A step of style transfer keeps VGG-19's activations for the backward pass: a few hundred
numbers per pixel, so the memory grows with the number of pixels, and a size with one zero
too many asks for hundreds of gigabytes. `estimate_run` adds up what a run keeps, from the
layer shapes alone (nothing is allocated); `available_bytes` says what the device has free;
`check_fits` refuses a run that cannot fit, in one line, before anything large is allocated,
and names the largest size that would fit (`largest_size`). During a run,
`is_out_of_memory` tells an allocation failure from other errors, so that the engine can
stop with the best image so far instead of crashing.

The precision of the network's features changes the estimate by half; it is an argument
here, decided by the engine once (`speed.run_precision`) and passed on, never decided again
in this module.

The estimate was checked against measured peaks (`python benchmarks/run.py --only estimate`
prints the comparison); see `CPU_RUNTIME_BYTES` and `BACKWARD_WORKSPACE` for the two
numbers that were measured rather than derived.
"""

import gc
import os
import re
import resource
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import StyleTransferError
from .images import MIN_SIDE_PX
from .layers import LAYER_INDEX, LAYER_NAMES
from .speed import precision_name

GB = 1e9
#: Channels of each VGG-19 block's convolutions.
BLOCK_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
#: The engine's L-BFGS history_size: that many pairs of image-sized vectors (s, y).
LBFGS_HISTORY_SIZE = 50
#: VGG-19's convolution weights and biases (20.0 million numbers).
NETWORK_NUMBERS = 20_024_384
#: Measured, not derived: what the runtime adds during a run on a CPU whatever the size
#: (oneDNN's kernels and primitive cache, OpenMP threads, the allocator's arenas).
CPU_RUNTIME_BYTES = 150e6
#: Measured, not derived: the backward pass's working memory at its peak (the gradients
#: flowing back through block 1, the Gram matrix's float32 gradient, oneDNN's conversions),
#: in float32 maps of 64 channels at full size. In bfloat16 the Gram matrices' float32 copies,
#: freed as the backward pass begins, make room for most of it.
BACKWARD_WORKSPACE = 2.2
#: From the GPU benchmark on an H200 only (benchmarks/results/cuda-nvidia-h200.json: the largest
#: sizes that fit in 14.5 GiB): float32 convolutions on a GPU take this much more working
#: memory (cuDNN's workspace), in the same units; bfloat16 and float16 matched without it.
CUDA_FLOAT32_WORKSPACE = 2.8
#: Sizes suggested instead are rounded down to a multiple of this.
SIZE_STEP_PX = 32
#: Of the free memory, a suggested size leaves this share unused, for the estimate's error.
HEADROOM = 0.85
#: Set this environment variable to 1 to skip the check before a run (for tests that need a
#: run to really run out of memory).
SKIP_CHECK_ENV = "NST_SKIP_MEMORY_CHECK"


@dataclass
class MemoryEstimate:
    """The peak memory of a run, in bytes, by part. `total` is their sum."""

    size_px: int
    shape: tuple  #: (H, W) of the optimized image
    device: str
    precision: str  #: of the network's features: "float32", "bfloat16" or "float16"
    optimizer: str
    parts: dict = field(default_factory=dict)  #: part -> bytes
    #: Memory a speed-up would take on top, if it is there; without it the run goes on
    #: without the speed-up (the CUDA graph's second copy of the step).
    optional: dict = field(default_factory=dict)

    @property
    def total(self):
        """What the run needs: the sum of the parts (not the optional ones)."""
        return sum(self.parts.values())

    def describe(self):
        """A few lines: the total and each part, largest first."""
        h, w = self.shape
        lines = [f"{w}×{h} px, {self.optimizer}, {self.precision} features on {self.device}: "
                 f"about {_gb(self.total)}"]
        for name, value in sorted(self.parts.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {name:<22} {value / 1e6:10.0f} MB")
        for name, value in self.optional.items():
            lines.append(f"  {name:<22} {value / 1e6:10.0f} MB more if free (else the run goes without it)")
        return "\n".join(lines)


class NotEnoughMemory(StyleTransferError):
    """A run that would not fit, refused before it started. `needed_bytes`, `available_bytes`
    and `largest_size_px` (None when even the smallest size would not fit) say by how much."""

    def __init__(self, size_px, needed_bytes, available_bytes, largest_size_px, device_type="cpu"):
        self.size_px = size_px
        self.needed_bytes = needed_bytes
        self.available_bytes = available_bytes
        self.largest_size_px = largest_size_px
        self.device_type = device_type
        super().__init__(self.message())

    def message(self, flag=None):
        """The one line; `flag` (e.g. "--size") names the setting the way the reader types it."""
        name = f"{flag} {self.size_px}" if flag else f"size {self.size_px} px"
        where = "this GPU has" if self.device_type == "cuda" else "this machine has"
        if self.largest_size_px is None:
            advice = "free some memory or use a machine with more"
        else:
            advice = f"try {flag} {self.largest_size_px}" if flag else f"try size {self.largest_size_px} px or less"
        return (f"{name} needs about {_gb(self.needed_bytes)} of memory and {where} "
                f"{_gb(self.available_bytes)} free: {advice}")


def _gb(n):
    """'673 GB', '1.5 GB', '201 MB'."""
    if n < GB:
        return f"{n / 1e6:.0f} MB"
    return f"{n / GB:.1f} GB" if n < 100 * GB else f"{n / GB:,.0f} GB"


# --- the estimate ------------------------------------------------------------------------------

def _forward_bytes(h, w, layers, style_layers, content_layers, act, pooling, low_precision):
    """Bytes that one forward pass over the optimized image keeps for backward, walking
    VGG-19's layers up to the deepest one asked for.

    Each convolution keeps its input, which is the previous ReLU's output (the ReLUs work in
    place, so a conv's output and its ReLU's share memory): one tensor per convolution. A
    max pool also keeps the position of each maximum as int64 (8 bytes a number). The Gram
    matrix keeps a float32 copy of a low-precision style layer; the content loss keeps the
    float32 difference at its layer."""
    last = max(LAYER_INDEX[name] for name in layers)
    saved, channels = 3 * h * w * (4 + (2 if low_precision else 0)), 3  # the image, and its cast
    for name in LAYER_NAMES[: last + 1]:
        block = int(name[4])
        if name.startswith("conv"):
            channels = BLOCK_CHANNELS[block]
            saved += channels * h * w * act
        elif name.startswith("pool"):
            h, w = h // 2, w // 2
            saved += channels * h * w * (act + (8 if pooling == "max" else 0))
        else:
            if name in style_layers and low_precision:
                saved += channels * h * w * 4
            if name in content_layers:
                saved += channels * h * w * 4
    return saved


def _image_layer_bytes(shape, layers):
    """Activations of a no-grad forward pass (the targets): what the layers asked for keep, plus
    the two largest tensors alive at once."""
    h, w = shape
    last = max(LAYER_INDEX[name] for name in layers)
    kept, largest, channels = 0, 3 * h * w * 4, 3
    for name in LAYER_NAMES[: last + 1]:
        if name.startswith("conv"):
            channels = BLOCK_CHANNELS[int(name[4])]
        elif name.startswith("pool"):
            h, w = h // 2, w // 2
        largest = max(largest, channels * h * w * 4)
        if name in layers:
            kept += channels * h * w * 4
    return kept + 2 * largest


def estimate_run(config, shape, style_shapes=(), *, device="cpu", precision=None, steps=None,
                 network=True):
    """The peak memory of a run of `config` (a StyleTransferConfig) whose image is
    `shape` = (H, W), in bytes by part; nothing is allocated.

    style_shapes: (H, W) of each style image at its run size (default: one, like `shape`).
    precision: the features' dtype (None or "float32", torch.bfloat16 or "bfloat16", "float16").
    steps: the run's length (L-BFGS keeps one more pair of vectors per step, up to 50;
    default: config.steps). network: count the network's weights (False when they are
    already loaded and shared).

    The parts: VGG-19's activations kept for backward (to the deepest layer asked for; the
    largest part by far), the backward pass's working memory, the images and the
    optimizer's state (Adam: 2 numbers per pixel and channel; L-BFGS: up to 100), the
    targets, the weights; and, as `optional`, on a GPU with CUDA graphs the recorded step's
    second copy. It is about proportional to the number of pixels.
    """
    device = torch.device(device)
    h, w = shape
    pixels = 3 * h * w  # numbers in one image
    name = precision_name(precision)
    act = 4 if name == "float32" else 2
    low = act == 2
    content_layers = tuple(config.content_layers) if config.content_weight else ()
    style_layers = tuple(config.style_layers)
    layers = content_layers + style_layers
    style_shapes = list(style_shapes) or [shape]
    steps = config.steps if steps is None else steps
    parts = {}
    parts["activations"] = _forward_bytes(h, w, layers, style_layers, content_layers, act,
                                          config.pooling, low)
    gram_copies = sum(_layer_numbers(shape, n) * 4 for n in style_layers) if low else 0
    workspace = BACKWARD_WORKSPACE + (CUDA_FLOAT32_WORKSPACE if device.type == "cuda" and not low else 0)
    parts["backward"] = max(0, workspace * BLOCK_CHANNELS[1] * h * w * 4 - gram_copies)
    # The image, its gradient, the best image so far, the photo (twice with colour preservation).
    images = 4 + (config.preserve_color != "none")
    parts["images"] = 4 * (pixels * images + sum(3 * sh * sw for sh, sw in style_shapes))
    if config.optimizer == "adam":
        parts["optimizer"] = 4 * pixels * 2  # exp_avg, exp_avg_sq
    else:
        # the (s, y) history, and the line search's copies of the image and its gradient
        parts["optimizer"] = 4 * pixels * (2 * min(max(steps - 1, 0), LBFGS_HISTORY_SIZE) + 8)
    # Targets: the photo's features at the content layers, float32 Gram matrices, and the
    # no-grad forward pass that computed them (before the run, so it counts only if larger).
    targets = sum(BLOCK_CHANNELS[int(n[4])] ** 2 * 4 for n in style_layers) * 2
    targets += sum(_layer_numbers(shape, n) * 4 for n in content_layers)
    parts["targets"] = targets
    before_run = max(_image_layer_bytes(s, style_layers) for s in style_shapes)
    if content_layers:
        before_run = max(before_run, _image_layer_bytes(shape, content_layers))
    during_run = parts["activations"] + parts["backward"] + parts["optimizer"]
    if before_run > during_run:
        parts["targets"] += before_run - during_run
    if network:
        parts["network"] = NETWORK_NUMBERS * (4 + (act if low else 0))
    if device.type == "cpu":
        parts["runtime"] = CPU_RUNTIME_BYTES
    optional = {}
    if (device.type == "cuda" and config.cuda_graphs and config.optimizer == "adam"
            and name != "float16"):
        # The recorded step lives in the graph's own memory pool, beside the memory of the
        # ordinary steps before it, which PyTorch's allocator keeps cached and cannot give
        # back while recording. Where that does not fit, the engine records no graph and runs
        # each step from Python (StyleTransfer._graph_step): the run itself needs one copy.
        optional["cuda graph copy"] = int(parts["activations"] + parts["backward"])
    return MemoryEstimate(size_px=max(shape), shape=tuple(shape), device=str(device), precision=name,
                          optimizer=config.optimizer, parts={k: int(v) for k, v in parts.items()},
                          optional=optional)


def _layer_numbers(shape, name):
    """Numbers in the activation of layer `name` for an image of `shape`."""
    h, w = shape
    for layer in LAYER_NAMES[: LAYER_INDEX[name] + 1]:
        if layer.startswith("pool"):
            h, w = h // 2, w // 2
    return BLOCK_CHANNELS[int(name[4])] * h * w


# --- image shapes without loading the images ---------------------------------------------------

def planned_shape(source, size_px):
    """(H, W) of `source` once `load_image(source, size_px)` has resized it, read from the
    file's header or the array's shape without decoding it; None if it cannot be told
    (then `load_image` will say what is wrong with it)."""
    size = _source_size(source)
    if size is None:
        return None
    w, h = size
    if size_px is None:
        return (h, w)
    scale = size_px / max(w, h)
    return (max(1, round(h * scale)), max(1, round(w * scale)))


def _source_size(source):
    """(W, H) of a picture as load_image will see it (EXIF orientation applied), or None."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        return _oriented(source)
    if isinstance(source, torch.Tensor) or hasattr(source, "shape"):
        shape = tuple(source.shape)
        if len(shape) == 4:
            shape = shape[1:]
        if len(shape) == 2:
            return (shape[1], shape[0])
        if len(shape) == 3:
            channels_first = isinstance(source, torch.Tensor) or (shape[0] in (1, 3, 4) and shape[-1] not in (1, 3, 4))
            return (shape[2], shape[1]) if channels_first else (shape[1], shape[0])
        return None
    try:
        if isinstance(source, (str, os.PathLike)):
            with Image.open(source) as pil:
                return _oriented(pil)
        if isinstance(source, (bytes, bytearray, memoryview)):
            import io
            with Image.open(io.BytesIO(bytes(source))) as pil:
                return _oriented(pil)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    return None


def _oriented(pil):
    w, h = pil.size
    try:
        orientation = pil.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block: load_image will ignore it too
        orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


# --- what the device has free ------------------------------------------------------------------

def available_bytes(device="cpu"):
    """Memory a run could still allocate on `device`, in bytes (None where it cannot be told).

    CPU: the kernel's MemAvailable, lowered to what a process limit (ulimit -v,
    RLIMIT_AS: address space) or a cgroup limit (a container's memory limit) leaves.
    GPU: free memory (torch.cuda.mem_get_info) plus what PyTorch holds cached but unused.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != "cpu":
        return None
    candidates = [_meminfo_available(), _rlimit_left(), _cgroup_left()]
    candidates = [c for c in candidates if c is not None]
    return min(candidates) if candidates else None


def _meminfo_available():
    try:
        match = re.search(r"MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        return int(match.group(1)) * 1024 if match else None
    except OSError:
        return None


def _status_bytes(field_name):
    try:
        match = re.search(rf"{field_name}:\s+(\d+) kB", Path("/proc/self/status").read_text())
        return int(match.group(1)) * 1024 if match else None
    except OSError:
        return None


def _rlimit_left():
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    used = _status_bytes("VmSize")
    return max(0, soft - used) if used is not None else soft


def _cgroup_left():
    """What the memory cgroup's limit leaves (cgroup v2 memory.max, or v1 limit_in_bytes)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
            files = (("memory.max", "memory.current"),)
            roots = [base, Path("/sys/fs/cgroup")]
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            files = (("memory.limit_in_bytes", "memory.usage_in_bytes"),)
            roots = [base, Path("/sys/fs/cgroup/memory")]
        else:
            continue
        for root in roots:
            for limit_name, usage_name in files:
                try:
                    limit = (root / limit_name).read_text().strip()
                    usage = int((root / usage_name).read_text().strip())
                except (OSError, ValueError):
                    continue
                if limit == "max" or int(limit) >= 2 ** 60:
                    return None
                return max(0, int(limit) - usage)
    return None


# --- the check before a run --------------------------------------------------------------------

def estimate_for(config, content, style=None, *, precision, device=None, steps=None, size_px=None):
    """`estimate_run` for the images a run would load (paths, arrays, tensors...), at
    `size_px` (default: config.size_px), with the features in `precision` (the dtype the
    engine resolved, `speed.run_precision`; None is float32)."""
    device = torch.device(device) if device is not None else _device(config)
    size_px = config.size_px if size_px is None else size_px
    shape = planned_shape(content, size_px) or (size_px, size_px)
    styles = style if isinstance(style, (list, tuple)) else ([style] if style is not None else [])
    style_px = max(MIN_SIDE_PX, round(size_px * config.style_scale))
    style_shapes = [planned_shape(s, style_px) or (style_px, style_px) for s in styles]
    return estimate_run(config, shape, style_shapes, device=device, precision=precision, steps=steps)


def _device(config):
    from .device import pick_device
    return pick_device(config.device)


def largest_size(config, content=None, style=None, *, precision, device=None, available=None,
                 steps=None, headroom=HEADROOM):
    """The largest size (long edge, a multiple of 32 px) whose estimate, with the features in
    `precision`, fits in `headroom` of the `available` bytes (default: what the device has free
    now); None if even 32 px does not fit or the free memory cannot be told."""
    device = torch.device(device) if device is not None else _device(config)
    if available is None:
        available = available_bytes(device)
    if available is None:
        return None
    budget = available * headroom
    shape = planned_shape(content, 1000) if content is not None else None
    styles = style if isinstance(style, (list, tuple)) else ([style] if style is not None else [])
    style_aspects = [planned_shape(s, 1000) for s in styles]

    def fits(px):
        def at(aspect, size):
            if aspect is None:
                return (size, size)
            return (max(1, round(aspect[0] * size / 1000)), max(1, round(aspect[1] * size / 1000)))
        style_px = max(MIN_SIDE_PX, round(px * config.style_scale))
        est = estimate_run(config, at(shape, px), [at(a, style_px) for a in style_aspects],
                           device=device, precision=precision, steps=steps)
        return est.total <= budget

    lo, hi = 0, 1  # in units of SIZE_STEP_PX
    while fits(hi * SIZE_STEP_PX):
        lo, hi = hi, hi * 2
        if hi > 10 ** 6:
            break
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid * SIZE_STEP_PX) else (lo, mid)
    return lo * SIZE_STEP_PX if lo else None


def check_fits(config, content, style=None, *, precision, device=None, available=None):
    """Raise NotEnoughMemory, in one line, if a run of `config` on these images, with the
    features in `precision`, would need more memory than the device has free; return the
    MemoryEstimate otherwise.

    The engine calls it (`StyleTransfer`), with the precision it resolved: this module
    estimates and never decides the precision itself. Cheap (a file header is read, nothing
    is allocated): the engine calls it before loading anything.
    `available` replaces the measured free memory (tests). Skipped (None returned) where the
    free memory cannot be told, or when the environment variable NST_SKIP_MEMORY_CHECK is 1.
    """
    if os.environ.get(SKIP_CHECK_ENV) == "1":
        return None
    device = torch.device(device) if device is not None else _device(config)
    estimate = estimate_for(config, content, style, device=device, precision=precision)
    if available is None:
        available = available_bytes(device)
    if available is None or estimate.total <= available:
        return estimate
    largest = largest_size(config, content, style, device=device, available=available, precision=precision)
    raise NotEnoughMemory(config.size_px, estimate.total, available, largest, device.type)


# --- running out during a run ------------------------------------------------------------------

_OOM_MARKERS = ("can't allocate memory", "defaultcpuallocator", "out of memory",
                "cannot allocate memory", "failed to allocate")


def is_out_of_memory(err):
    """Whether `err` is an allocation failure (CPU or GPU), not some other error."""
    if isinstance(err, MemoryError):
        return True
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(err, oom):
        return True
    return isinstance(err, RuntimeError) and any(m in str(err).lower() for m in _OOM_MARKERS)


def out_of_memory_message(err, device=None, size_px=None, step=None):
    """One line: what ran out, when, and what to try (the caller adds what it kept)."""
    oom = getattr(torch.cuda, "OutOfMemoryError", ())
    gpu = isinstance(err, oom) or (device is not None and torch.device(device).type == "cuda")
    what = "out of GPU memory" if gpu else "out of memory"
    when = f" at step {step}" if step else " before the run started"
    at = f" at size {size_px} px" if size_px else ""
    asked = re.search(r"allocate ([\d.]+ [KMGT]iB|\d+ bytes)", str(err))
    if asked and asked.group(1).endswith(" bytes"):
        asked = f" (it asked for {_gb(int(asked.group(1).split()[0]))} more)"
    else:
        asked = f" (it asked for {asked.group(1)} more)" if asked else ""
    smaller = max(MIN_SIDE_PX, int(size_px * 0.7) // SIZE_STEP_PX * SIZE_STEP_PX) if size_px else None
    advice = f"try a smaller size, e.g. {smaller}" if smaller else "try a smaller size"
    return f"{what}{when}{at}{asked}: {advice}, or close other programs."


def ran_out_of_memory(stopped):
    """Whether a run's `stopped` message (StyleTransferResult.stopped) says it ran out of memory."""
    return bool(stopped) and stopped.startswith(("out of memory", "out of GPU memory"))


def release_memory(device):
    """Free what can be freed after an allocation failure."""
    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def human_bytes(n):
    """'12.3 GB'."""
    return _gb(n)


__all__ = ["MemoryEstimate", "NotEnoughMemory", "available_bytes", "check_fits", "estimate_for",
           "estimate_run", "is_out_of_memory", "largest_size", "out_of_memory_message",
           "planned_shape", "ran_out_of_memory", "release_memory"]
