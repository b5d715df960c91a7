"""On a CPU the notebooks' sizes follow a measured step time (helpers.notebook)."""

import pytest
import torch

from helpers import notebook
from helpers.notebook import NotebookRun, cpu_scale


def test_scale_keeps_pixels_times_time_per_pixel():
    assert cpu_scale(0.27) == pytest.approx(1.0)
    # a pass 4 times faster allows twice the long edge (4 times the pixels) in the same time
    assert cpu_scale(0.27 / 4) == pytest.approx(2.0)
    assert cpu_scale(0.27 * 2) == pytest.approx(2 ** -0.5)


def test_scale_stays_within_its_limits():
    assert cpu_scale(1e-6) == notebook.CPU_SCALE_LIMITS[1]
    assert cpu_scale(1e6) == notebook.CPU_SCALE_LIMITS[0]


def cpu_run(scale, quick=False):
    return NotebookRun(name="x", quick=quick, device=torch.device("cpu"), scale=scale)


def test_size_scales_cpu_sizes_to_multiples_of_16():
    run = cpu_run(1.71)
    assert run.size(gpu=512, cpu=150, quick=48) == 256
    assert run.size(gpu=(256, 512), cpu=(75, 150, 300), quick=(48,)) == (128, 256, 512)
    assert cpu_run(0.95).size(gpu=512, cpu=150, quick=48) == 144
    assert cpu_run(0.5).size(gpu=512, cpu=64, quick=48) == 64  # never below 64 px


def test_size_leaves_gpu_and_quick_sizes_alone():
    assert cpu_run(1.71, quick=True).size(gpu=512, cpu=150, quick=48) == 48
    gpu = NotebookRun(name="x", quick=False, device=torch.device("cuda"), scale=1.71)
    assert gpu.size(gpu=512, cpu=150, quick=48) == 512


def test_steps_follow_the_speed_itself_in_tens():
    # sizes scale by sqrt(speed), so pixels x time stay put; a step count scales by the speed
    assert cpu_run(1.0).steps(gpu=4000, cpu=40, quick=3) == 40
    assert cpu_run(1.71).steps(gpu=4000, cpu=40, quick=3) == 120  # 40 x 2.92 = 117
    assert cpu_run(0.5).steps(gpu=4000, cpu=40, quick=3) == 10
    assert cpu_run(0.5).steps(gpu=4000, cpu=12, quick=3) == 10  # never below 10
    assert cpu_run(1.71, quick=True).steps(gpu=4000, cpu=40, quick=3) == 3
    gpu = NotebookRun(name="x", quick=False, device=torch.device("cuda"), scale=1.71)
    assert gpu.steps(gpu=4000, cpu=40, quick=3) == 4000


def test_setup_measures_the_cpu_and_says_so(monkeypatch, capsys):
    monkeypatch.delenv("NST_QUICK", raising=False)
    monkeypatch.setattr(notebook, "pick_device", lambda _: torch.device("cpu"))
    monkeypatch.setattr(notebook, "measure_cpu_pass", lambda device="cpu": ("bfloat16", 0.27 / 4))
    run = notebook.notebook_setup("x")
    assert run.scale == pytest.approx(2.0)
    out = capsys.readouterr().out
    assert "0.07 s here (bfloat16)" in out and "sizes × 2.00" in out


def test_measure_cpu_pass_times_the_engines_precision(monkeypatch):
    monkeypatch.setenv("NST_PRECISION", "float32")
    name, seconds = notebook.measure_cpu_pass("cpu")
    assert name == "float32" and 0 < seconds < 60


def test_measure_cpu_pass_uses_what_auto_kept(monkeypatch, tmp_path):
    # the same machine gets the same sizes every run: the timing "auto" cached, not a new one
    import json

    from helpers import speed

    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("NST_PRECISION", raising=False)
    key = speed.machine_key(torch.device("cpu"))
    entry = {"precision": "float32", "seconds_per_step": {"float32": 0.123}, "px": 128}
    (tmp_path / speed.PRECISION_CACHE).write_text(json.dumps({key: entry}))
    monkeypatch.setattr(speed, "candidate_precisions", lambda device: ["float32", "bfloat16"])
    assert notebook.measure_cpu_pass("cpu") == ("float32", 0.123)
    # measured at another size: timed again rather than trusted
    entry["px"] = 64
    (tmp_path / speed.PRECISION_CACHE).write_text(json.dumps({key: entry}))
    monkeypatch.setattr(speed, "measure_precisions", lambda device, names, model=None, px=None: {names[0]: 0.5})
    assert notebook.measure_cpu_pass("cpu")[1] == 0.5
