"""The benchmark's code runs end to end at a tiny size (the real benchmark is not a test:
`python benchmarks/run.py` takes a quarter of an hour), and its yardstick is the classic loop."""

import json

import pytest
import torch

import helpers
from benchmarks import reference_loop, run

TINY = dict(run.QUICK, step_sizes=[48], step_rounds={48: 1}, reference_steps=2, helpers_max_steps=2,
            chunk=2, bf16_steps=2, memory_sizes=[], preview_rounds=1, preview_block=2)


@pytest.fixture
def one_thread():
    # On a CPU shared with other jobs one thread is several times faster than two (see run.py).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def random_vgg():
    return helpers.load_vgg19("random")


def test_benchmark_writes_results_and_plot(tmp_path, capsys, one_thread):
    assert run.main(["--device", "cpu", "--out", str(tmp_path)], config=TINY) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    slug = run.describe_machine(torch.device("cpu"))[1]
    assert files == [f"{slug}-bf16-vs-float32.png", f"{slug}.json", f"{slug}.png"] or \
        files == [f"{slug}.json", f"{slug}.png"]  # no picture where the CPU has no fast bfloat16
    results = json.loads((tmp_path / f"{slug}.json").read_text())
    row = results["seconds_per_step"][0]
    assert row["px"] == 48 and row["reference_s_per_step"] > 0 and row["helpers_s_per_step"] > 0
    assert abs(row["ratio"] - row["helpers_s_per_step"] / row["reference_s_per_step"]) < 1e-9
    quality = results["time_to_quality"]
    assert quality["reference_steps"] == 2 and quality["reference_classic_objective"]["total"] > 0
    assert set(quality["reference_judged"]) == {"content", "style"}
    for name in ("same_objective", "defaults_both_terms"):
        row = quality[name]
        assert row["steps_run"] <= 2 and (row["ratio"] is None or row["ratio"] >= 0)
    assert (tmp_path / f"{slug}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    estimate = results["memory_estimate"][0]  # helpers.memory's estimate against a measured peak
    assert estimate["px"] == 64 and estimate["estimate_bytes"] > 0 and estimate["measured_bytes"] > 0
    assert abs(estimate["ratio"] - estimate["estimate_bytes"] / estimate["measured_bytes"]) < 1e-9
    auto = results["auto_precision"]
    assert auto["choice"] in auto["candidates"] and auto["candidates"][0] == "float32"
    if "auto_vs_float32" in row:
        assert row["auto_dtype"] == auto["choice"]
    start = results["startup"]
    assert 0 < start["helpers_s"] < 600 and 0 < start["reference_s"] < 600
    whole = results["time_to_quality_whole_process"]
    assert whole["reference_s"] == pytest.approx(start["reference_s"] + quality["reference_seconds"])
    out = capsys.readouterr().out
    assert "time to quality" in out and "start-up" in out and "precision auto picks" in out
    assert "estimate/measured" in out


def test_reference_keeps_relu_outputs_under_conv_names(one_thread, random_vgg):
    # The seed tutorial's quirk, kept on purpose: in-place ReLUs overwrite the stored conv outputs.
    model = random_vgg
    image = torch.rand(1, 3, 48, 48)
    feats = reference_loop.get_features(model.preprocess(image), model.features)
    assert set(feats) == set(reference_loop.LAYERS.values())
    ours = model(image, ["relu4_2", "conv4_2"])
    assert torch.equal(feats["conv4_2"], ours["relu4_2"])
    assert (ours["conv4_2"] < 0).any() and (feats["conv4_2"] >= 0).all()


def test_the_engine_given_the_classic_objective_minimizes_the_classic_loops_loss(one_thread, random_vgg):
    """(a) of time to quality: classic_objective_weights make the engine's loss the classic loop's
    own objective times one factor, on any picture (here three), so both minimize the same thing."""
    from helpers.config import StyleTransferConfig
    from helpers.optimization import StyleTransfer

    model = random_vgg
    gen = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, 48, 64, generator=gen), torch.rand(1, 3, 48, 64, generator=gen)
    ref = reference_loop.ReferenceLoop(content, style, model.features, model.preprocess)
    engine = StyleTransfer(content, style, StyleTransferConfig(size_px=64, precision="float32", device="cpu"),
                           model=model)
    engine.update(**run.classic_objective_weights(engine, ref))
    with torch.no_grad():
        factors = [float(engine.losses(x)["total"]) / float(ref.losses(x)["total"])
                   for x in (torch.rand(1, 3, 48, 64, generator=gen), content * 0.7 + 0.1, (content + style) / 2)]
    # float32 sums of squares: equal to a few parts in 10,000 (a layer's weight off by 2x would be tens of %)
    assert factors[1] == pytest.approx(factors[0], rel=3e-3) and factors[2] == pytest.approx(factors[0], rel=3e-3)
    # and the yardstick itself still learns
    first = float(ref.step())
    for _ in range(3):
        last = float(ref.step())
    assert last < first and ref.step_count == 4


def test_the_real_time_benchmark_runs_end_to_end(tmp_path, one_thread):
    """benchmarks/realtime.py --quick: two tiny networks against a 3-step optimization, every figure written."""
    from benchmarks import realtime

    realtime.main(["--quick", "--device", "cpu", "--out", str(tmp_path), "--track-every", "1",
                   "--variants", '[{}, {"norm": "batch", "content_layers": ["relu2_2"]}]'])
    slug = run.describe_machine(torch.device("cpu"))[1]
    results = json.loads((tmp_path / f"realtime-{slug}.json").read_text())
    first, second = results["networks"]
    assert second["settings"]["norm"] == "batch" and second["settings"]["content_layers"] == ["relu2_2"]
    assert first["steps"] == 3 and first["one_pass_seconds"] > 0 and first["flicker"] >= 0
    assert first["style_vs_optimization"] == pytest.approx(first["style"] / results["optimization"]["style"])
    assert set(first["images_per_second"]) == {"cpu float32 64"}
    # the held-out photo judged after every step; the last judgement is the network's final score
    assert [t[0] for t in first["held_out_track"]] == [1, 2, 3]
    assert first["held_out_track"][-1][1] == pytest.approx(first["style"], rel=1e-4)
    assert first["held_out_best"]["style"] == min(t[1] for t in first["held_out_track"])
    assert (tmp_path / f"realtime-{slug}.pt").exists() and (tmp_path / f"realtime-{slug}-optimization.png").exists()
