"""What every notebook's setup cell needs: where we run, how big, and a quick mode for tests.

`NST_QUICK=1` (set by the test configuration) shrinks every size and step count so the
whole series runs in minutes under pytest; without it, notebooks run at full size:
GPU sizes where there is a GPU, CPU sizes that finish in minutes otherwise.
"""

import os
import sys
from dataclasses import dataclass

import torch

from .device import describe_device, pick_device

REPOSITORY = "nst-tutorial/neural-style-notebooks"


def in_colab():
    return "google.colab" in sys.modules


@dataclass
class NotebookRun:
    name: str
    quick: bool
    device: torch.device

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
        print(f"{name}: running on {describe_device(device)} in {where}: full GPU sizes.")
    else:
        hint = " (Runtime > Change runtime type > GPU makes it much faster)" if in_colab() else ""
        print(f"{name}: running on {describe_device(device)} in {where}: CPU sizes{hint}.")
    return run
