"""Making a step fast without changing what it computes.

None of this is in Gatys et al.: `helpers.optimization` runs the paper's loop, and calls
these pieces where they apply.

- `pick_precision`: which dtype the network's forward and backward pass runs in ("auto":
  the fastest, measured once per machine by `measure_precisions` and kept in a cache);
  `run_precision` asks it for a run's settings: each engine (`optimization.StyleTransfer`,
  `realtime.Trainer`) does that once and passes the answer to its memory check and losses;
- `low_precision_copy`: the network's weights cast once to that dtype;
- `network_features`: the forward pass in that dtype (losses stay float32);
- `grad_scaler`: loss scaling, which float16's narrow range needs;
- `CudaGraphStep`: one whole step recorded as a CUDA graph and replayed;
- `Adam`: torch's Adam update for the one image on a CPU, without `torch.optim.Optimizer`,
  whose first use imports `torch._dynamo` (about 1.5 s of every start);
- `fast_gram_matrix`: `losses.gram_matrix`'s numbers with a one-product backward pass, and
  bfloat16 features straight to a GPU's tensor cores.

`precision="float32"` and `cuda_graphs=False` switch all of it off.
"""

import copy
import json
import os
import time
import weakref

import torch
from torch.optim.adam import adam as adam_update  # loaded with torch already; no torch._dynamo

from .cache import cache_dir
from .config import PRECISIONS
from .device import bf16_supported, cpu_family_model, cpu_name, fp16_tensor_cores
from .errors import StyleTransferError
from .images import write_atomically

#: Set to float32, bfloat16, float16 or auto, this overrides every run's `precision`
#: (notebooks, studio and command line alike). L-BFGS stays float32 whatever it says.
PRECISION_ENV = "NST_PRECISION"
#: The file in `helpers.cache.cache_dir()` where "auto" keeps what it measured.
PRECISION_CACHE = "precision.json"
#: A low precision is chosen only if its step takes at most this share of float32's: a
#: smaller gain could be noise, and float32 is the exact one.
FASTER_BY = 0.9
#: Under load (`cpu_busy`) the precisions can swap places, so a measurement is kept only if its
#: winner is clear, at most this share of every other candidate's time (idle, bfloat16 took
#: 0.55 of float32's on a Zen 4 EPYC; under a load of 10 they swapped within 3 %) ...
CLEAR_UNDER_LOAD = 0.75
#: ... or once this many runs in a row under load picked the same one: a machine that is never
#: idle (a user's own previous run keeps the load near the core count) still settles.
VOTES_UNDER_LOAD = 3
#: What is timed: a forward and backward pass to these layers (the defaults') at this size
#: (px). On a GPU a small pass is all kernel launches, the same in any precision, while the
#: engine replays its steps as CUDA graphs, without them. At 512 px an H100 still timed
#: bfloat16 at 4.17 ms against float32's 4.45 (so "auto" kept float32), where the engine's
#: steps took 1.88 and 3.05 ms: 1024 px, where the arithmetic outweighs the launches.
MEASURE_PX = {"cpu": 128, "cuda": 1024}
MEASURE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")


def measure_px(device):
    """The size (px) "auto" times a pass at on `device` (`MEASURE_PX`)."""
    return MEASURE_PX.get(torch.device(device).type, 128)


def precision_name(precision):
    """"float32", "bfloat16" or "float16" for a dtype, a name, or None (the engine's float32)."""
    if precision is None:
        return "float32"
    if isinstance(precision, torch.dtype):
        return str(precision).removeprefix("torch.")
    return str(precision)


def pick_precision(precision, device, optimizer="adam", model=None):
    """The dtype of the network's forward pass for `precision` on `device`, or None for float32.

    "auto": the fastest of the candidates this device has (`candidate_precisions`: float32,
    bfloat16 where it runs natively, float16 on GPUs with tensor cores but no bfloat16),
    measured the first time on a machine (`measured_precision`, with `model` if given) and
    never one slower than float32. Whether bfloat16 *runs* says nothing about whether it is
    *fast*: on an AMD EPYC (Zen 4) a bfloat16 step took half of float32's, on a 2-core
    Intel Xeon with the same AVX-512 BF16 flag 1.7 times as long.

    $NST_PRECISION, if set, replaces `precision` everywhere.

    L-BFGS runs in float32 only, and asking it for less is an error: its line search
    compares loss values that differ in the fourth digit, below what bfloat16's 8-bit
    mantissa resolves, and its curvature pairs (differences of gradients) drown in the
    rounding. Measured on a 2-core Intel Xeon at 128 px, 20 s each: float32 reached a loss
    of 1.50, bfloat16 stalled at 4.70. (A low precision from $NST_PRECISION, which is meant
    for every run, leaves L-BFGS in float32 instead.)
    """
    device = torch.device(device)
    adam = optimizer == "adam"
    from_env = precision_from_environment()
    if from_env is not None:
        precision = from_env
        if not adam:
            return None
    if precision == "auto":
        if not adam:
            return None
        precision = measured_precision(device, model)
    if precision != "float32" and not adam:
        raise StyleTransferError(f"precision {precision} does not work with L-BFGS (its line search needs "
                                 "float32 losses and gradients): use --precision float32 or auto, or Adam")
    if precision == "float32":
        return None
    if device.type not in ("cpu", "cuda"):
        raise StyleTransferError(f"precision {precision} is not supported on {device.type}; use float32")
    return getattr(torch, precision)


def run_precision(config, device, model=None):
    """`pick_precision` for a run of `config` (a StyleTransferConfig, or a TrainingConfig,
    which is always Adam) on `device`: the dtype of its features, or None for float32.

    Each engine calls this once, when it is built, and passes the answer down (to
    `memory.check_fits`, to its forward passes); what sizes a run before there is an engine
    (the studio's size slider, the notebooks' sizes) asks the same question here.
    """
    return pick_precision(config.precision, device, getattr(config, "optimizer", "adam"), model)


def precision_from_environment():
    """$NST_PRECISION if it is set (a one-line error if it is not a precision), else None."""
    value = os.environ.get(PRECISION_ENV, "").strip().lower()
    if not value:
        return None
    if value not in PRECISIONS:
        raise StyleTransferError(f"{PRECISION_ENV}={os.environ[PRECISION_ENV]!r} is not a precision: "
                                 f"set it to one of {', '.join(PRECISIONS)}, or unset it")
    return value


def candidate_precisions(device):
    """The precisions worth timing on `device`: float32, bfloat16 where it runs natively,
    float16 on a GPU with tensor cores but no bfloat16 (a T4)."""
    device = torch.device(device)
    return (["float32"] + (["bfloat16"] if bf16_supported(device) else [])
            + (["float16"] if fp16_tensor_cores(device) else []))


def machine_key(device):
    """What a measured choice is valid for: the device, the CPU model (name, family and model
    number) or GPU name, the number of CPU threads (two threads are not twice one), and the
    torch version."""
    device = torch.device(device)
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        family = cpu_family_model()
        what = f"{cpu_name()}{f' ({family})' if family else ''}, {torch.get_num_threads()} threads"
    return f"{device.type}: {what}, torch {torch.__version__}"


def fastest_precision(seconds):
    """The precision to use given the seconds per step of each candidate: the fastest, if
    it beats float32 by the margin `FASTER_BY`, else float32. Never one slower than float32."""
    best = min(seconds, key=seconds.get)
    if best != "float32" and seconds[best] <= FASTER_BY * seconds["float32"]:
        return best
    return "float32"


def precision_cache_path():
    return cache_dir() / PRECISION_CACHE


def measured_precision(device, model=None):
    """What "auto" means on `device`: float32 where nothing else is a candidate; else what the
    cache (`precision_cache_path`) says for this machine (`machine_key`), else measured now
    (`measure_precisions`, a few seconds) and written to the cache. Delete the cache file,
    or run `python -m helpers --clear-cache`, to measure again."""
    candidates = candidate_precisions(device)
    if candidates == ["float32"]:
        return "float32"
    key, path = machine_key(device), precision_cache_path()
    cache = _read_json(path)
    known = cache.get(key)
    # an answer measured at another size (by an older version of this function) is measured again
    if (isinstance(known, dict) and known.get("precision") in candidates
            and known.get("px") == measure_px(device)):
        return known["precision"]
    seconds = measure_precisions(device, candidates, model)
    choice = fastest_precision(seconds)
    _forget_low_precision_copies(model, keep=getattr(torch, choice, None))
    if device.type == "cpu" and cpu_busy() and not clear_winner(seconds, choice):
        # Timed while other programs kept the cores busy, the two precisions can swap places
        # (seen here: float32 1.29 s against bfloat16 1.25 s under a load of 10 on 2 cores,
        # 0.17 s against 0.09 s idle). Use an unclear answer now; keep it only once
        # VOTES_UNDER_LOAD runs in a row agree.
        if _vote_under_load(path, key, choice) < VOTES_UNDER_LOAD:
            return choice
    cache = _read_json(path)  # again: another process may have written meanwhile
    cache.pop(key + UNDER_LOAD_SUFFIX, None)
    cache[key] = {"precision": choice, "seconds_per_step": seconds, "px": measure_px(device),
                  "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    _write_cache(path, cache)
    return choice


UNDER_LOAD_SUFFIX = " | under load"


def clear_winner(seconds, choice):
    """Whether `choice` beat every other candidate in `seconds` clearly: in at most
    `CLEAR_UNDER_LOAD` of its time (float32 alone always has)."""
    return all(seconds[choice] <= CLEAR_UNDER_LOAD * t for name, t in seconds.items() if name != choice)


def _vote_under_load(path, key, choice):
    """Record an unclear choice made under load; return how many runs in a row made it."""
    cache = _read_json(path)
    votes = cache.get(key + UNDER_LOAD_SUFFIX)
    votes = votes if isinstance(votes, list) else []
    votes = (votes if votes[-1:] == [choice] else []) + [choice]
    cache[key + UNDER_LOAD_SUFFIX] = votes
    _write_cache(path, cache)
    return len(votes)


def _write_cache(path, cache):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda f: f.write((json.dumps(cache, indent=1) + "\n").encode()))
    except (OSError, StyleTransferError):
        pass  # no cache (read-only home, full disk): measured again next time


def cached_timings(device):
    """What "auto" measured on `device` and kept ({"precision", "seconds_per_step", "px", ...}),
    or {} if nothing is kept for this machine."""
    known = _read_json(precision_cache_path()).get(machine_key(torch.device(device)))
    return known if isinstance(known, dict) else {}


def cpu_busy():
    """Whether other programs keep this machine's cores busy: a 1-minute load average above
    the number of cores (False where the load average cannot be read)."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1)
    except (AttributeError, OSError):
        return False


def measure_precisions(device, candidates, model=None, px=None, warmup=2, rounds=5, budget_s=3.0):
    """Seconds per forward and backward pass of VGG-19 (to `MEASURE_LAYERS`, at `px`, by
    default `MEASURE_PX`, channels-last, as the engine runs it) in each candidate precision:
    {name: seconds}.

    The candidates take turns, so that a machine shared with other work slows them alike,
    and each gets the fastest of its `rounds` (at least two; no more once `budget_s` is
    spent). A candidate that fails counts as infinitely slow. `model`: the network to time
    (default: untrained VGG-19 weights, which are as fast). On an idle 2-core CPU this
    takes about a second or two.
    """
    device = torch.device(device)
    px = px or measure_px(device)
    if model is None:
        from .network import load_vgg19

        model = load_vgg19("random", device=device)
    image = torch.rand(1, 3, px, px, generator=torch.Generator().manual_seed(0)).to(device)
    image.requires_grad_(True)
    seconds = {name: float("inf") for name in candidates}
    failed = set()

    def step(name):
        dtype = None if name == "float32" else getattr(torch, name)
        image.grad = None
        feats = network_features(model, image, MEASURE_LAYERS, dtype)
        sum(f.float().pow(2).mean() for f in feats.values()).backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for name in candidates:
        try:
            for _ in range(warmup):
                step(name)
        except RuntimeError:
            failed.add(name)
    start_rounds = time.perf_counter()
    for r in range(rounds):
        if r >= 2 and time.perf_counter() - start_rounds > budget_s:
            break
        for name in candidates:
            if name in failed:
                continue
            start = time.perf_counter()
            step(name)
            seconds[name] = min(seconds[name], time.perf_counter() - start)
    return seconds


def _forget_low_precision_copies(model, keep=None):
    """Free the low-precision copies of `model` made only to be timed."""
    copies = _LOW_PRECISION.get(model) if model is not None else None
    if copies:
        for dtype in [d for d in copies if d != keep]:
            del copies[dtype]


def _read_json(path):
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


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


class Adam:
    r"""Adam (Kingma & Ba 2015) on a single tensor: the very update `torch.optim.Adam` makes on a
    CPU (its function `torch.optim.adam.adam`, one tensor at a time), with the parts of the
    optimizer interface the engine uses (`param_groups[0]["lr"]`, `state`, `zero_grad`, `step`).

    .. math:: m \leftarrow \beta_1 m + (1-\beta_1)\,g,\quad
              v \leftarrow \beta_2 v + (1-\beta_2)\,g^2,\quad
              x \leftarrow x - \mathrm{lr}\,\frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}

    Why not `torch.optim.Adam` itself: building any `torch.optim.Optimizer` imports
    `torch._dynamo` (its `add_param_group` is wrapped to keep the compiler out), which took
    1.0–1.5 s of every `python -m helpers` start on a 2-core CPU, a third of the whole start.
    On a GPU the engine uses `torch.optim.Adam` (fused, and replayable in a CUDA graph).
    """

    def __init__(self, param, lr, betas=(0.9, 0.999), eps=1e-8):
        self.param = param
        self.param_groups = [{"params": [param], "lr": lr, "betas": betas, "eps": eps}]
        self.state = {}

    def zero_grad(self, set_to_none=True):
        if set_to_none or self.param.grad is None:
            self.param.grad = None
        else:
            self.param.grad.zero_()

    @torch.no_grad()
    def step(self):
        if self.param.grad is None:
            return
        if not self.state:
            self.state.update(step=torch.tensor(0.0),
                              exp_avg=torch.zeros_like(self.param, memory_format=torch.preserve_format),
                              exp_avg_sq=torch.zeros_like(self.param, memory_format=torch.preserve_format))
        group = self.param_groups[0]
        adam_update([self.param], [self.param.grad], [self.state["exp_avg"]], [self.state["exp_avg_sq"]], [],
                    [self.state["step"]], foreach=False, amsgrad=False, beta1=group["betas"][0],
                    beta2=group["betas"][1], lr=group["lr"], weight_decay=0.0, eps=group["eps"],
                    maximize=False, capturable=False, differentiable=False, has_complex=False)


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


# --- the Gram matrix, fast -----------------------------------------------------------------

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


def fast_gram_matrix(features):
    """`losses.gram_matrix` (G = F·Fᵀ / (N_l·M_l), float32), as the engine computes it.

    The same numbers up to rounding (a test checks), from the engine's channels-last features
    laid out as (N, H·W, C) (a view, not a copy) and `_Gram`'s one-product backward pass.
    """
    n, c, h, w = features.shape
    f = features.permute(0, 2, 3, 1).reshape(n, h * w, c)
    # bfloat16 straight to the tensor cores where they take it (checked on an H200); anything
    # else, float16 on a T4 included, is converted to float32 first.
    if not (f.is_cuda and f.dtype == torch.bfloat16 and _BMM_OUT_DTYPE and bf16_supported(f.device)):
        f = f.float()
    return _Gram.apply(f) / (c * h * w)
