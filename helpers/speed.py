"""Making a step fast without changing what it computes.

None of this is in Gatys et al.: `helpers.optimization` runs the paper's loop, and calls
these pieces where they apply.

- `pick_precision`: which dtype the network's forward and backward pass runs in;
- `low_precision_copy`: the network's weights cast once to that dtype;
- `network_features`: the forward pass in that dtype (losses stay float32);
- `grad_scaler`: loss scaling, which float16's narrow range needs;
- `CudaGraphStep`: one whole step recorded as a CUDA graph and replayed.

`precision="float32"` and `cuda_graphs=False` switch all of it off.
"""

import copy
import weakref

import torch

from .config import PRECISIONS  # noqa: F401
from .device import bf16_supported, fp16_tensor_cores
from .errors import StyleTransferError



def pick_precision(precision, device, optimizer="adam"):
    """The dtype of the network's forward pass for `precision` on `device`, or None for float32.

    "auto": bfloat16 where it is fast, float16 on GPUs with tensor cores but no bfloat16
    (a T4; Adam only), float32 elsewhere.

    L-BFGS runs in float32 only, and asking it for less is an error: its line search
    compares loss values that differ in the fourth digit, below what bfloat16's 8-bit
    mantissa resolves, and its curvature pairs (differences of gradients) drown in the
    rounding. Measured on a 2-core Intel Xeon at 128 px, 20 s each: float32 reached a loss
    of 1.50, bfloat16 stalled at 4.70.
    """
    device = torch.device(device)
    adam = optimizer == "adam"
    if precision == "auto":
        if not adam:
            return None
        precision = ("bfloat16" if bf16_supported(device) else
                     "float16" if fp16_tensor_cores(device) else "float32")
    if precision != "float32" and not adam:
        raise StyleTransferError(f"precision {precision} does not work with L-BFGS (its line search needs "
                                 "float32 losses and gradients): use --precision float32 or auto, or Adam")
    if precision == "float32":
        return None
    if device.type not in ("cpu", "cuda"):
        raise StyleTransferError(f"precision {precision} is not supported on {device.type}; use float32")
    return getattr(torch, precision)


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


def network_features(model, image, layers, dtype=None):
    """`model(image, layers)` in channels-last layout, in `dtype` (None: float32)."""
    image = image.contiguous(memory_format=torch.channels_last)
    if dtype is None:
        return model(image, layers)
    # cache_enabled=False: autocast's cache of cast weights must be off inside a CUDA graph,
    # and is not needed here (the weights were cast once, by low_precision_copy).
    with torch.autocast(image.device.type, dtype=dtype, cache_enabled=False):
        return low_precision_copy(model, dtype)(image, layers)


def grad_scaler(dtype, device):
    """A `torch.amp.GradScaler` for float16, else None.

    float16 has a narrow range: gradients this deep in VGG-19 (1e-8 and less) would
    underflow to zero, so the loss is scaled up before backward and the gradient back
    down before Adam's step (the scaler also skips a step that overflows).
    """
    return torch.amp.GradScaler(torch.device(device).type) if dtype == torch.float16 else None


class CudaGraphStep:
    """`step()` on a GPU, replayed from a CUDA graph after a few ordinary steps.

    At 512 px the GPU otherwise waits for Python to queue the step's few hundred small
    kernels. The first `WARMUP_STEPS` run as usual on a side stream (cuDNN picks its
    kernels, the memory allocator settles), then one step is recorded and replayed from
    then on. The graph holds its tensors in place: the image, its gradient, Adam's state
    and the returned loss terms are the same memory at every replay, so anything recorded
    in it (weights, learning rate) needs `reset()` to be recorded again. If recording runs
    out of memory (it needs the step's memory a second time), `failed` is set and the
    caller goes on without a graph.
    """

    WARMUP_STEPS = 2

    def __init__(self, step, optimizer, device):
        self.step, self.optimizer, self.device = step, optimizer, torch.device(device)
        self.graph, self.terms, self.warmed_up, self.failed = None, None, 0, False

    def reset(self):
        self.graph = None

    def __call__(self):
        if self.graph is None and self.warmed_up < self.WARMUP_STEPS:
            self.warmed_up += 1
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                terms = self.step()
            torch.cuda.current_stream(self.device).wait_stream(side)
            return terms
        if self.graph is None:
            self.optimizer.zero_grad(set_to_none=True)  # the graph's backward then owns .grad
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    terms = self.step()
            except torch.cuda.OutOfMemoryError:
                self.failed = True
                del graph
                self.optimizer.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                return self.step()
            self.graph, self.terms = graph, terms
        self.graph.replay()
        return self.terms
