"""Coarse-to-fine high resolution (Gatys et al. 2017, section 6): optimize a small image,
upsample the result, and use it as the starting image at the next, larger size.

At a small size the network's receptive fields cover much of the picture, so the layout
of the strokes is settled cheaply; each larger size then only has to add detail, which
takes far fewer steps than starting there from the photo. A CPU can so make a 512 px
result (128 → 256 → 512) and a GPU a very large one (512 → 1024 → 2048).
"""

import time
from dataclasses import dataclass

import torch

from . import memory
from .errors import StyleTransferError
from .images import check_size
from .config import StyleTransferConfig
from .optimization import StyleTransfer, StyleTransferResult
from .progress import Progress


@dataclass
class ScaleProgress(Progress):
    """A `Progress` across all scales: `step` and `steps` count every scale's steps together.

    `eta_s` assumes that a step costs in proportion to its number of pixels, so the larger
    sizes still to come are counted as slower than the current one.
    """

    scale: int = 0  #: which size this is, 0-based
    scales: int = 1  #: how many sizes in all
    size_px: int = 0  #: the long edge at this scale
    eta_estimate_s: float = 0.0

    @property
    def eta_s(self):
        return self.eta_estimate_s


def parse_sizes(sizes):
    """"128,256,512" (or a list of ints) -> (128, 256, 512), checked: each a whole number of
    pixels ≥ 32 and each larger than the one before."""
    if isinstance(sizes, str):
        parts = [p for p in sizes.replace(",", " ").split() if p]
        try:
            sizes = [int(p) for p in parts]
        except ValueError:
            raise StyleTransferError(
                f"sizes must be whole numbers of pixels separated by commas, e.g. 128,256,512; got {sizes!r}"
            ) from None
    sizes = tuple(sizes)
    if not sizes:
        raise StyleTransferError("no sizes given: name at least one, e.g. 128,256,512")
    for size in sizes:
        check_size(size, "each size")
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise StyleTransferError(
            f"sizes must grow from coarse to fine, e.g. 128,256,512; got {','.join(map(str, sizes))}"
        )
    return tuple(int(s) for s in sizes)


def _steps_per_scale(steps, n):
    if isinstance(steps, int) and not isinstance(steps, bool):
        steps = (steps,) * n
    steps = tuple(steps)
    if len(steps) != n:
        raise StyleTransferError(f"{len(steps)} step counts for {n} sizes: give one number, or one per size")
    for s in steps:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise StyleTransferError(f"steps must be positive whole numbers, got {s!r}")
    return steps


def stylize_multiscale(content, style, sizes, config=None, *, steps=None, callback=None, stop=None,
                       init_image=None, model=None, **options):
    """Coarse-to-fine style transfer: `stylize` at each size of `sizes` in turn, each starting
    from the previous result upsampled (bilinear) to the new size.

    sizes:  e.g. (128, 256, 512); the last is the result's long edge (config.size_px is ignored).
    steps:  steps at each size, one number or one per size (default: config.steps at each).
    callback(progress) gets a `ScaleProgress`, with steps counted across all sizes.
    The first size starts from `init_image` or `config.init`. `style_scale` is relative to
    each size, so the strokes keep their size relative to the picture.
    Returns a StyleTransferResult whose history has a "size_px" per row and whose
    `extra["scales"]` lists each size's steps and seconds; `extra["engine"]` is the last
    size's StyleTransfer (`.run(100)` continues there). A run stopped early returns the best
    image of the size it was at.
    """
    config = (config or StyleTransferConfig()).replace(**options)
    sizes = parse_sizes(sizes)
    steps = _steps_per_scale(config.steps if steps is None else steps, len(sizes))
    total = sum(steps)
    # The largest size decides whether the run fits: the first engine checks it (its memory
    # check is the only one), so the run is refused now, not after the small sizes.
    largest = config.replace(size_px=sizes[-1], steps=steps[-1])
    torch.manual_seed(config.seed)
    start_time = time.perf_counter()
    image, history, scales, done, result = init_image, [], [], 0, None
    for i, (size, n) in enumerate(zip(sizes, steps)):
        try:
            engine = StyleTransfer(content, style, config.replace(size_px=size, steps=n),
                                   init_image=image, model=model, fits_for=largest if i == 0 else None)
        except (RuntimeError, MemoryError, memory.NotEnoughMemory) as err:
            # Out of memory while preparing a larger size: keep the last size's picture.
            if i == 0 or not (memory.is_out_of_memory(err) or isinstance(err, memory.NotEnoughMemory)):
                raise
            message = (f"out of memory at size {size} px, before its first step: {err}"
                       if isinstance(err, memory.NotEnoughMemory)
                       else memory.out_of_memory_message(err, result.device, size, None))
            result = StyleTransferResult(image=image, history=[], config=config, steps_done=0, seconds=0.0,
                                         stopped=message, device=result.device)
            break
        result = engine.run(callback=_forward(callback, i, sizes, steps, done, total, start_time), stop=stop)
        history += [dict(row, step=row["step"] + done, size_px=size) for row in result.history]
        done += result.steps_done
        scales.append({"size_px": size, "steps": result.steps_done, "seconds": result.seconds,
                       "shape": tuple(result.image.shape[-2:])})
        image = result.image
        if result.stopped:
            break
    return StyleTransferResult(
        image=image, history=history, config=config.replace(size_px=sizes[-1], steps=steps[0]),
        steps_done=done, seconds=time.perf_counter() - start_time, stopped=result.stopped,
        device=result.device, extra={"sizes": sizes, "steps": steps, "scales": scales, "engine": engine},
    )


def _forward(callback, i, sizes, steps, done, total, start_time):
    """Wrap `callback` so that it receives a ScaleProgress counted across all sizes."""
    if callback is None:
        return None

    def on_progress(p):
        # A step costs about in proportion to the pixels: later sizes are (size_j / size_i)² slower.
        later = sum(n * (s / sizes[i]) ** 2 for s, n in zip(sizes[i + 1:], steps[i + 1:]))
        eta = (p.steps - p.step + later) * p.seconds_per_step
        callback(ScaleProgress(done + p.step, total, p.losses, p.image, time.perf_counter() - start_time,
                               p.seconds_per_step, scale=i, scales=len(sizes), size_px=sizes[i],
                               eta_estimate_s=eta))

    return on_progress
