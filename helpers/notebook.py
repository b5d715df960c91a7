"""What every notebook's setup cell needs: where we run, how big, and a quick mode for tests.

`NST_QUICK=1` (set by the test configuration) shrinks every size and step count so the
whole series runs in minutes under pytest; without it, notebooks run at full size:
GPU sizes where there is a GPU, CPU sizes that finish in minutes otherwise.

CPUs differ by more than ten times (one Binder core in float32 against a laptop's eight
in bfloat16), so on a CPU the sizes follow a measured step time: each notebook's CPU
sizes are written for one core that makes a pass of VGG-19 at 128 px in
`CPU_REFERENCE_PASS_S`, and `NotebookRun.size` scales them by the square root of how much
faster (or slower) this machine's pass is. The time a step takes grows with its pixel
count, so every notebook takes about as long anywhere: a faster CPU draws bigger pictures.
Where the pictures keep one size (a training on fixed crops), `NotebookRun.steps` scales the
number of steps instead, by the square of that factor.
"""

import os
import platform
import sys
import time
from dataclasses import dataclass, field

import torch

from .device import describe_device, pick_device

REPOSITORY = "nst-tutorial/neural-style-notebooks"
#: One forward and backward pass of VGG-19 at 128 px, in seconds, on the CPU the notebooks'
#: CPU sizes are written for: one core in float32, as on Binder (measured: 0.27 s on one
#: core of an AMD EPYC with `taskset -c 0`; each notebook then runs in under 5 minutes).
CPU_REFERENCE_PASS_S = 0.27
#: How far the CPU sizes may grow or shrink with the measured speed.
CPU_SCALE_LIMITS = (0.5, 2.0)


def in_colab():
    return "google.colab" in sys.modules


def processor_name():
    """The CPU's model name (e.g. 'AMD EPYC 9B14'), or '' where the system does not say."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def describe_machine(device):
    """What made a notebook's outputs: the device, and for a CPU its model and thread count."""
    device = torch.device(device)
    if device.type == "cpu":
        name = processor_name()
        return f"CPU{' ' + name if name else ''}, {torch.get_num_threads()} threads"
    return describe_device(device)


def cpu_scale(pass_seconds, reference_s=CPU_REFERENCE_PASS_S, limits=CPU_SCALE_LIMITS):
    """How much to scale the CPU sizes (long edges) on a CPU whose pass at 128 px takes
    `pass_seconds`: sqrt(reference / measured), so that pixels × time per pixel stays the
    same, within `limits`."""
    return min(max((reference_s / pass_seconds) ** 0.5, limits[0]), limits[1])


def measure_cpu_pass(device="cpu", config=None):
    """(precision, seconds): one forward and backward pass of VGG-19 at 128 px on this CPU, in
    the precision the engine will use for `config` (default: the engine's defaults, "auto";
    $NST_PRECISION overrides either). "auto" times that pass once per machine and keeps it
    (`speed.measured_precision`), so the sizes stay the same from one run to the next; where it
    kept nothing (a busy machine), the pass is timed now."""
    from . import speed
    from .config import StyleTransferConfig

    device = torch.device(device)
    name = speed.precision_name(speed.run_precision(config or StyleTransferConfig(), device))
    known = speed.cached_timings(device)
    if known.get("px") == 128 and name in known.get("seconds_per_step", {}):
        return name, known["seconds_per_step"][name]
    return name, speed.measure_precisions(device, [name], px=128)[name]


@dataclass
class NotebookRun:
    name: str
    quick: bool
    device: torch.device
    started: float = field(default_factory=time.perf_counter)
    scale: float = 1.0  #: what the CPU sizes are multiplied by on this machine (`cpu_scale`)

    @property
    def on_gpu(self):
        return self.device.type in ("cuda", "mps")

    @property
    def mode(self):
        """"quick", "gpu" or "cpu": which column of sizes this run uses."""
        return "quick" if self.quick else ("gpu" if self.on_gpu else "cpu")

    def pick(self, gpu, cpu, quick):
        """The value for this run: `quick` under tests, `gpu` on a GPU, else `cpu`."""
        return {"quick": quick, "gpu": gpu, "cpu": cpu}[self.mode]

    def size(self, gpu, cpu, quick):
        """A size in px for this run: like `pick`, but on a CPU `cpu` × `scale`, a multiple of 16
        (at least 64): bigger pictures where a step is fast, smaller where it is slow."""
        if self.mode != "cpu":
            return self.pick(gpu, cpu, quick)
        scaled = lambda px: max(64, int(round(px * self.scale / 16)) * 16)
        return tuple(scaled(px) for px in cpu) if isinstance(cpu, (tuple, list)) else scaled(cpu)

    def steps(self, gpu, cpu, quick):
        """A step count for this run: like `pick`, but on a CPU `cpu` × `scale`², a multiple of
        10 (at least 10). For loops whose steps keep one size, such as a training on crops of a
        fixed size: the count follows the speed, so the loop takes about as long on any CPU."""
        if self.mode != "cpu":
            return self.pick(gpu, cpu, quick)
        return max(10, int(round(cpu * self.scale ** 2 / 10)) * 10)

    def finish(self):
        """Call in a notebook's last cell: prints how long the whole run took, and on what."""
        seconds = time.perf_counter() - self.started
        took = f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
        print(f"{self.name}: the whole notebook took {took} on {describe_machine(self.device)} "
              f"({self.mode} sizes), PyTorch {torch.__version__}.")
        return seconds

    def fit_size(self, size_px, config=None, content=None, style=None):
        """`size_px`, or the largest size whose run fits in the memory free on this run's
        device if that is smaller (a Colab T4 is never sent 4096 px); says so when it shrinks.

        config: the run's settings (default: the engine's defaults); content, style: its
        images (default: square ones, which need the most for a given long edge)."""
        from .config import StyleTransferConfig
        from .memory import largest_size
        from .speed import run_precision

        config = (config or StyleTransferConfig()).replace(device=str(self.device))
        fits = largest_size(config, content, style, device=self.device,
                            precision=run_precision(config, self.device))
        if fits is None or fits >= size_px:
            return size_px
        print(f"{size_px} px would not fit in the memory free on {describe_device(self.device)}: using {fits} px")
        return fits

    def fit_sizes(self, sizes, config=None, content=None, style=None):
        """Coarse-to-fine sizes, the ones that would not fit replaced by the largest that does."""
        largest = self.fit_size(max(sizes), config, content, style)
        kept = [s for s in sizes if s < largest]
        return kept + [largest]


def notebook_setup(name, seed=0):
    """Call once at the top of a notebook: seeds torch, picks the device, reads NST_QUICK.

    Prints one line saying where the notebook runs and at which sizes. Under tests
    (NST_QUICK=1 with NST_QUICK_LOG set) it also records `name`, so that the test suite
    can prove that every notebook really ran in quick mode.
    """
    quick = os.environ.get("NST_QUICK", "") == "1"
    torch.manual_seed(seed)
    device = pick_device("auto")
    run = NotebookRun(name=name, quick=quick, device=device)
    where = "Colab" if in_colab() else "this machine"
    if quick:
        print(f"{name}: quick mode (NST_QUICK=1), tiny sizes for tests, on {describe_device(device)}")
        log = os.environ.get("NST_QUICK_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as f:
                f.write(name + "\n")
    elif run.on_gpu:
        print(f"{name}: running on {describe_machine(device)} in {where}: full GPU sizes.")
    else:
        precision, seconds = measure_cpu_pass(device)
        run.scale = cpu_scale(seconds)
        hint = " (Runtime > Change runtime type > GPU makes it much faster)" if in_colab() else ""
        print(f"{name}: running on {describe_machine(device)} in {where}: CPU sizes{hint}.\n"
              f"One pass of VGG-19 at 128 px takes {seconds:.2f} s here ({precision}), against "
              f"{CPU_REFERENCE_PASS_S} s on one Binder-like core: sizes × {run.scale:.2f}.")
    return run
