"""How many of this process's CPU cores other programs are keeping busy, and so how many threads
to compute with (no PyTorch).

PyTorch splits every convolution over all its threads and waits for the slowest. When another
program holds one of two cores, the thread that shares that core finishes last every time: on a
2-core Intel Xeon (family 6 model 207), with a training on the other core, the main job took
133 s on two threads and 77 s on one. `CoreWatch` is started as the command begins; by the time
the network is loaded it knows, from the kernel's counters (`/proc/stat`), how much of the cores
went to other programs meanwhile.
"""

import os
import time

#: a core counts as taken when other programs used at least this share of it on average
TAKEN_SHARE = 0.5
MIN_WINDOW_S = 0.25  #: shorter windows are too coarse for the kernel's 10 ms ticks


def _cores():
    """The CPUs this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _busy_seconds(cores, text=None):
    """Seconds the given CPUs spent on anything but idling (user, nice, system, irq, softirq,
    steal) since boot, from /proc/stat; None where it cannot be read."""
    try:
        text = text if text is not None else open("/proc/stat").read()
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    busy = 0
    for line in text.splitlines():
        name, _, fields = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields.split()[:8])
            busy += user + nice + system + irq + softirq + steal
    return busy / tick


def threads_for(busy_elsewhere, cores, threads):
    """The threads to use: `threads` (PyTorch's choice), less one for each core that other
    programs keep busy (rounded, at least `TAKEN_SHARE` of a core each), never below one."""
    taken = int(busy_elsewhere + (1 - TAKEN_SHARE))  # below TAKEN_SHARE of a core: 0
    return max(1, min(threads, cores - taken))


class CoreWatch:
    """Started early, asked later: `busy_elsewhere()` is how many cores, on average since the
    start, other programs kept busy: all the cores' busy time less this process's own CPU time,
    over the wall time."""

    def __init__(self):
        self.cores = _cores()
        self.start = (time.perf_counter(), time.process_time(), _busy_seconds(self.cores))

    def busy_elsewhere(self):
        """Cores busy with other programs since the start (0.0 where it cannot be told)."""
        wall0, own0, busy0 = self.start
        if busy0 is None:
            return 0.0
        time.sleep(max(0.0, MIN_WINDOW_S - (time.perf_counter() - wall0)))
        busy1 = _busy_seconds(self.cores)
        wall, own = time.perf_counter() - wall0, time.process_time() - own0
        if busy1 is None or wall <= 0:
            return 0.0
        return max(0.0, (busy1 - busy0 - own) / wall)
