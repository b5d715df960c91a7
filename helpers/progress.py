"""What a running optimization or training reports to its callback: `Progress`.

The engine (`optimization`), coarse to fine (`multiscale`) and the real-time training
(`realtime`) report the same way, so that one preview (`preview`) and one progress bar
serve them all.
"""

from dataclasses import dataclass

import torch


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
