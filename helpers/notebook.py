"""What every notebook's setup cell needs: where we run, how big, and a quick mode for tests.

`NST_QUICK=1` (set by the test configuration) shrinks every size and step count so the
whole series runs in minutes under pytest; without it, notebooks run at full size:
GPU sizes where there is a GPU, CPU sizes that finish in minutes otherwise.
"""

import os
import platform
import sys
import time
from dataclasses import dataclass, field

import torch

from .device import describe_device, pick_device

REPOSITORY = "nst-tutorial/neural-style-notebooks"


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


@dataclass
class NotebookRun:
    name: str
    quick: bool
    device: torch.device
    started: float = field(default_factory=time.perf_counter)

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
        from .memory import largest_size
        from .optimization import StyleTransferConfig

        config = (config or StyleTransferConfig()).replace(device=str(self.device))
        fits = largest_size(config, content, style, device=self.device)
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
        hint = " (Runtime > Change runtime type > GPU makes it much faster)" if in_colab() else ""
        print(f"{name}: running on {describe_machine(device)} in {where}: CPU sizes{hint}.")
    return run
