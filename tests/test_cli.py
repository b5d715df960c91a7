"""`python -m helpers`: the main job, and every bad input as one line, status 2, no file written."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from helpers.cli import main

ROOT = Path(__file__).resolve().parents[1]
CITY = str(ROOT / "images/content/city.jpg")
STARRY = str(ROOT / "images/style/starry_night.jpg")
FAST = ["--size", "48", "--steps", "2", "--weights", "random", "-q"]


def _cli(*args, cwd, timeout=240):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "helpers", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_no_arguments_stylizes_the_bundled_city_photo(tmp_path):
    """The default job, shortened: the bundled images, real weights, a PNG in the working dir."""
    done = _cli("--size", "64", "--steps", "10", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "city-starry_night.png"
    assert Image.open(out).size == (64, 48)
    assert "Saved" in done.stdout and "relu4_2" in done.stdout and "caffe" in done.stdout
    assert "10/10" in done.stderr  # the tqdm progress bar
    again = _cli("--size", "64", "--steps", "1", cwd=tmp_path)
    assert again.returncode == 0 and (tmp_path / "city-starry_night-1.png").exists()


def test_help_lists_every_option(tmp_path):
    done = _cli("--help", cwd=tmp_path)
    for flag in ("--size", "--steps", "--content-weight", "--style-weight", "--tv-weight", "--optimizer",
                 "--lr", "--init", "--seed", "--device", "--weights", "--pooling", "--overwrite"):
        assert flag in done.stdout


def _write(path, data):
    path.write_bytes(data)
    return str(path)


def _bad_inputs(d):
    good = Image.new("RGB", (64, 64), "white")
    good.save(d / "good.png")
    good.save(d / "good.jpg")
    cut = (d / "good.jpg").read_bytes()
    Image.new("RGB", (10, 10)).save(d / "tiny.png")
    g = str(d / "good.png")
    return {
        "missing": ([str(d / "nope.jpg"), g], "nope.jpg: no such file"),
        "folder": ([str(d), g], "is a folder"),
        "empty": ([_write(d / "empty.jpg", b""), g], "is empty"),
        "text named jpg": ([_write(d / "text.jpg", b"just some words"), g], "not an image"),
        "truncated": ([_write(d / "cut.jpg", cut[: len(cut) // 3]), g], "truncated"),
        "unsupported": ([_write(d / "a.svg", b"<svg/>"), g], "unsupported format"),
        "too small image": ([str(d / "tiny.png"), g], "10×10 px"),
        "size zero": ([g, g, "--size", "0"], "too small"),
        "negative size": ([g, g, "--size", "-5"], "too small"),
        "zero steps": ([g, g, "--steps", "0"], "steps must be a positive"),
        "negative steps": ([g, g, "--steps", "-3"], "steps must be a positive"),
        "unknown layer": ([g, g, "--content-layers", "relu4_9"], "unknown VGG-19 layer 'relu4_9'"),
        "unknown optimizer": ([g, g, "--optimizer", "sgd"], "invalid choice: 'sgd'"),
        "unknown weights": ([g, g, "--weights", "imagenet"], "invalid choice: 'imagenet'"),
        "unknown device": ([g, g, "--device", "tpu"], "unknown device 'tpu'"),
        "negative style weight": ([g, g, "--style-weight", "-1"], "style weight must be a number ≥ 0"),
        "negative content weight": ([g, g, "--content-weight", "-2"], "content weight"),
        "negative tv weight": ([g, g, "--tv-weight", "-0.5"], "tv weight"),
        "not a number": ([g, g, "--steps", "many"], "invalid int value: 'many'"),
        "bad output type": ([g, g, "-o", str(d / "out.doc")], "unknown file type '.doc'"),
        "output folder missing": ([g, g, "-o", str(d / "nowhere" / "out.png")], "does not exist"),
    }


BAD_CASES = ["missing", "folder", "empty", "text named jpg", "truncated", "unsupported", "too small image",
             "size zero", "negative size", "zero steps", "negative steps", "unknown layer", "unknown optimizer",
             "unknown weights", "unknown device", "negative style weight", "negative content weight",
             "negative tv weight", "not a number", "bad output type", "output folder missing"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_status_2_and_no_file(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, message = _bad_inputs(tmp_path)[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    try:
        code = main([*FAST, *args])  # the case's own flags come last and win
    except SystemExit as exit_:  # argparse's own checks (choices, types) exit directly
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and err.startswith("error: ") and message in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_existing_output_is_not_overwritten_without_the_flag(tmp_path, capsys):
    out = tmp_path / "mine.png"
    out.write_bytes(b"my holiday photo")
    assert main([CITY, STARRY, "-o", str(out), *FAST]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"my holiday photo"
    assert main([CITY, STARRY, "-o", str(out), "--overwrite", *FAST]) == 0
    assert Image.open(out).size == (48, 36)


def test_a_bad_output_path_is_caught_before_the_run(tmp_path, capsys, monkeypatch):
    import helpers.optimization as optimization  # the CLI imports the engine from there when it runs

    monkeypatch.setattr(optimization, "StyleTransfer", lambda *a, **k: pytest.fail("the run started"))
    assert main([CITY, STARRY, "-o", str(tmp_path / "missing" / "x.png"), *FAST]) == 2


def test_ctrl_c_saves_the_best_image_so_far(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = tmp_path / "partial.png"
    proc = subprocess.Popen([sys.executable, "-m", "helpers", CITY, STARRY, "-o", str(out), "--size", "48",
                             "--steps", "100000", "--weights", "random"], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE, text=True)
    seen = ""
    deadline = time.time() + 120
    while "loss=" not in seen and time.time() < deadline:  # wait for the first progress report
        seen += proc.stderr.read(1)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130
    assert f"saved the best image so far to {out}" in rest
    assert "Traceback" not in rest
    assert Image.open(out).size == (48, 36)


def test_settings_go_into_the_png(tmp_path):
    out = tmp_path / "s.png"
    assert main([CITY, STARRY, "-o", str(out), "--style-weight", "42", *FAST]) == 0
    assert "'style_weight': 42.0" in Image.open(out).text["Settings"]


@pytest.mark.parametrize("argv,device,sizes,steps", [
    ([], "cpu", (256, 512), (150, 60)),          # the main job: 512 px, coarse to fine, on a CPU
    ([], "cuda", (512, 1024), (300, 150)),       # ... and 1024 px on a GPU
    (["--steps", "40"], "cpu", (256, 512), (40, 40)),
    (["--size", "64"], "cpu", None, (300,)),     # one size: one run of the default steps
    (["--size", "64", "--steps", "7"], "cpu", None, (7,)),
    (["--sizes", "64,128", "--steps", "5"], "cpu", (64, 128), (5, 5)),
])
def test_the_main_job_and_explicit_sizes(argv, device, sizes, steps):
    from helpers import cli

    args = cli.build_parser().parse_args(argv)
    assert cli._sizes_and_steps(args, device) == (sizes, steps)


@pytest.mark.parametrize("pass_s,plan", [
    (0.05, (150, 60)),    # a fast CPU (a Zen 4 EPYC in bfloat16 is near this): the full main job
    (0.229, (60, 45)),    # the 2-core Zen 2 EPYC in float32
    (2.0, (40, 30)),      # slower than any plan's budget: the shortest plan
])
def test_the_cpu_main_job_is_sized_by_the_measured_pass(pass_s, plan):
    from helpers import cli

    chosen, seconds = cli.plan_main_job(pass_s, aspect=0.75)
    assert chosen == plan
    richer = cli.MAIN_JOB_CPU_PLANS[:cli.MAIN_JOB_CPU_PLANS.index(plan)]
    assert all(cli.plan_main_job(pass_s, 0.75, plans=(p,))[1] > cli.MAIN_JOB_BUDGET_S for p in richer)
    assert seconds <= cli.MAIN_JOB_BUDGET_S or plan == cli.MAIN_JOB_CPU_PLANS[-1]
    args = cli.build_parser().parse_args([])
    assert cli._sizes_and_steps(args, "cpu", pass_s, 0.75) == ((256, 512), plan)
    assert cli._sizes_and_steps(args, "cuda", pass_s, 0.75) == ((512, 1024), (300, 150))  # a GPU: 1024 px
    steps = cli.build_parser().parse_args(["--steps", "40"])
    assert cli._sizes_and_steps(steps, "cpu", pass_s, 0.75) == ((256, 512), (40, 40))  # asked for: kept


def test_a_square_photo_gets_fewer_steps_than_a_wide_one():
    from helpers import cli

    assert cli.plan_main_job(0.229, aspect=1.0)[0] < cli.plan_main_job(0.229, aspect=0.5)[0]


def test_a_core_held_by_another_program_is_left_out_and_the_threads_restored(monkeypatch, tmp_path, capsys):
    """With one of two cores busy elsewhere the run computes on one thread, says so, and leaves
    the session's thread count as it found it; OMP_NUM_THREADS, where set, decides instead."""
    import torch

    from helpers import cores

    monkeypatch.setattr(cores.CoreWatch, "busy_elsewhere", lambda self: 1.0)
    monkeypatch.setattr(cores, "_cores", lambda: [0, 1])
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = []
    real_set = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (seen.append(n), real_set(n)))
    try:
        args = [CITY, STARRY, "-o", str(tmp_path / "a.png"), "--size", "48", "--steps", "2", "--weights", "random"]
        assert main(args) == 0
        assert seen == [1, 2] and torch.get_num_threads() == 2
        assert "computing on 1 thread, not 2" in capsys.readouterr().err
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        seen.clear()
        assert main([*args[:2], "-o", str(tmp_path / "b.png"), *args[4:]]) == 0
        assert seen == []
    finally:
        real_set(before)
