"""helpers.cores: how many cores other programs keep busy, and the threads left to compute on."""

import pytest

from helpers import cores

STAT = """cpu  900 0 300 5000 10 0 0 0 0 0
cpu0 400 0 100 2500 5 0 0 0 0 0
cpu1 500 0 200 2500 5 0 0 0 0 0
intr 12345
"""


def test_busy_seconds_reads_only_our_cores_and_skips_idle_and_iowait(monkeypatch):
    monkeypatch.setattr(cores.os, "sysconf", lambda name: 100)
    assert cores._busy_seconds([0, 1], STAT) == pytest.approx(12.0)
    assert cores._busy_seconds([1], STAT) == pytest.approx(7.0)


@pytest.mark.parametrize("busy, n_cores, threads, use", [
    (0.0, 2, 2, 2),    # idle: PyTorch's choice
    (0.3, 2, 2, 2),    # a little background work takes no core
    (0.95, 2, 2, 1),   # another program holds one of two cores
    (1.9, 2, 2, 1),    # both held: still one thread
    (1.0, 8, 4, 4),    # PyTorch's own choice is already below what is free
    (3.6, 8, 8, 4),
])
def test_threads_for_leaves_the_taken_cores_out(busy, n_cores, threads, use):
    assert cores.threads_for(busy, n_cores, threads) == use


def test_the_watch_subtracts_this_process_own_work(monkeypatch):
    """A core kept busy by this process itself is not another program's."""
    clock = {"wall": 0.0, "own": 0.0, "busy": 0.0}
    monkeypatch.setattr(cores.time, "perf_counter", lambda: clock["wall"])
    monkeypatch.setattr(cores.time, "process_time", lambda: clock["own"])
    monkeypatch.setattr(cores.time, "sleep", lambda s: None)
    monkeypatch.setattr(cores, "_busy_seconds", lambda c, text=None: clock["busy"])
    watch = cores.CoreWatch()
    clock.update(wall=2.0, own=2.0, busy=2.0)  # two seconds, all of them ours
    assert watch.busy_elsewhere() == 0.0
    clock.update(busy=4.0)  # two more core-seconds than ours: one core held by someone else
    assert watch.busy_elsewhere() == pytest.approx(1.0)


def test_without_proc_stat_nothing_is_busy(monkeypatch):
    monkeypatch.setattr(cores, "_busy_seconds", lambda c, text=None: None)
    assert cores.CoreWatch().busy_elsewhere() == 0.0
