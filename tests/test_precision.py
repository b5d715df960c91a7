"""The fast paths: float16 with loss scaling, the choice of precision, CUDA graphs on a GPU.

The GPU tests are skipped on a machine without CUDA (CI has none); they run wherever a GPU
is, and ran on the GPU named in benchmarks/results/.
"""

import json

import pytest
import torch

from helpers import StyleTransfer, StyleTransferConfig, StyleTransferError, load_vgg19
from helpers import speed

CITY = "images/content/city.jpg"
STARRY = "images/style/starry_night.jpg"
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)


def test_float16_with_loss_scaling_reaches_the_float32_loss(caffe_model):
    """Without loss scaling the gradients at relu4_2 underflow in float16; with it the run
    follows the float32 one. Judged by the float32 loss of each final image."""
    runs = {p: StyleTransfer(CITY, STARRY, size_px=48, precision=p, model=caffe_model, device="cpu")
            for p in ("float32", "float16")}
    for engine in runs.values():
        engine.run(40)
    assert runs["float16"].autocast_dtype == torch.float16 and runs["float16"].scaler is not None
    judge = runs["float32"]
    with torch.no_grad():
        start = judge.losses(judge.content)["total"].item()
        fp32 = judge.losses(runs["float32"].image)["total"].item()
        fp16 = judge.losses(runs["float16"].image)["total"].item()
    assert fp32 < 0.3 * start
    assert abs(fp16 - fp32) < 0.05 * fp32


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_lbfgs_refuses_low_precision(precision):
    with pytest.raises(StyleTransferError, match=f"precision {precision} does not work with L-BFGS"):
        StyleTransfer(torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 40), size_px=40, weights="random",
                      precision=precision, optimizer="lbfgs")


# --- "auto": measured once per machine, never slower than float32 --------------------------

@pytest.fixture
def measured(monkeypatch, tmp_path):
    """Injected timings: `measured.seconds` is what "measuring" returns; `measured.calls`
    counts the measurements. The cache goes to a temporary folder; $NST_PRECISION is unset."""
    class Measured:
        seconds = {"float32": 1.0, "bfloat16": 0.5, "float16": 0.4}
        calls = 0

    def fake_measure(device, candidates, model=None, **kwargs):
        Measured.calls += 1
        return {name: Measured.seconds[name] for name in candidates}

    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(speed.PRECISION_ENV, raising=False)
    monkeypatch.setattr(speed, "measure_precisions", fake_measure)
    monkeypatch.setattr(speed, "cpu_busy", lambda: False)  # as on an idle machine, whatever this one does
    monkeypatch.setattr(speed, "bf16_supported", lambda device: True)
    monkeypatch.setattr(speed, "fp16_tensor_cores", lambda device: False)
    return Measured


def _engine(**options):
    return StyleTransfer(torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 40), size_px=40, weights="random",
                         device="cpu", **options)


@pytest.mark.parametrize("seconds,expected", [
    ({"float32": 1.0, "bfloat16": 0.5}, "bfloat16"),    # an AMD EPYC (Zen 4)
    ({"float32": 0.28, "bfloat16": 0.47}, "float32"),   # a 2-core Intel Xeon, same AVX-512 BF16 flag
    ({"float32": 1.0, "bfloat16": 0.95}, "float32"),    # within the margin: could be noise
    ({"float32": 1.0, "bfloat16": 0.6, "float16": 0.4}, "float16"),  # the fastest wins
    ({"float32": 1.0, "bfloat16": float("inf")}, "float32"),  # bfloat16 failed to run
])
def test_the_fastest_precision_wins_and_none_is_slower_than_float32(seconds, expected):
    assert speed.fastest_precision(seconds) == expected
    assert seconds[speed.fastest_precision(seconds)] <= seconds["float32"]


@pytest.mark.parametrize("bf16,fp16,optimizer,seconds,expected,calls", [
    (True, False, "adam", {"bfloat16": 0.5}, torch.bfloat16, 1),  # bfloat16 measured faster
    (True, False, "adam", {"bfloat16": 1.7}, None, 1),            # bfloat16 measured slower
    (False, True, "adam", {"float16": 0.4}, torch.float16, 1),    # a T4
    (True, True, "lbfgs", {}, None, 0),                           # L-BFGS: float32, nothing measured
    (False, False, "adam", {}, None, 0),                          # float32 the only candidate
])
def test_auto_precision_is_the_measured_fastest(monkeypatch, measured, bf16, fp16, optimizer, seconds,
                                                expected, calls):
    monkeypatch.setattr(speed, "bf16_supported", lambda device: bf16)
    monkeypatch.setattr(speed, "fp16_tensor_cores", lambda device: fp16)
    measured.seconds = {"float32": 1.0, **seconds}
    assert _engine(optimizer=optimizer).autocast_dtype == expected
    assert measured.calls == calls


def test_the_measurement_is_cached_per_machine_and_torch_version(monkeypatch, measured, tmp_path):
    assert _engine().autocast_dtype == torch.bfloat16 and measured.calls == 1
    cache = json.loads((tmp_path / speed.PRECISION_CACHE).read_text())
    entry = cache[speed.machine_key("cpu")]
    assert entry["precision"] == "bfloat16" and entry["seconds_per_step"] == {"float32": 1.0, "bfloat16": 0.5}
    measured.seconds = {"float32": 1.0, "bfloat16": 2.0}  # would change the answer, were it measured again
    assert _engine().autocast_dtype == torch.bfloat16 and measured.calls == 1
    monkeypatch.setattr(torch, "__version__", "9.9.9")  # another torch: measured again
    assert _engine().autocast_dtype is None and measured.calls == 2
    assert len(json.loads((tmp_path / speed.PRECISION_CACHE).read_text())) == 2


def test_an_answer_measured_at_another_size_is_measured_again(monkeypatch, measured, tmp_path):
    """A GPU's cached answer from the 512 px probe (launch-bound on an H100: it kept float32 where
    bfloat16 steps took 0.62 of float32's) must not outlive the probe that made it."""
    assert _engine().autocast_dtype == torch.bfloat16 and measured.calls == 1
    path = tmp_path / speed.PRECISION_CACHE
    cache = json.loads(path.read_text())
    cache[speed.machine_key("cpu")].update(precision="float32", px=512)
    path.write_text(json.dumps(cache))
    assert _engine().autocast_dtype == torch.bfloat16 and measured.calls == 2
    assert json.loads(path.read_text())[speed.machine_key("cpu")]["px"] == speed.MEASURE_PX["cpu"]


def test_an_unclear_measurement_on_a_busy_cpu_is_used_but_not_kept(monkeypatch, measured, tmp_path):
    """Under load the precisions can swap places; an unclear answer must not stick at once."""
    monkeypatch.setattr(speed, "cpu_busy", lambda: True)
    measured.seconds = {"float32": 1.0, "bfloat16": 0.85}  # faster, but not clearly
    assert _engine().autocast_dtype == torch.bfloat16 and measured.calls == 1
    assert speed.cached_timings("cpu") == {}
    monkeypatch.setattr(speed, "cpu_busy", lambda: False)
    assert _engine().autocast_dtype == torch.bfloat16 and measured.calls == 2  # measured again, now kept
    assert speed.cached_timings("cpu")["precision"] == "bfloat16"
    cache = json.loads((tmp_path / speed.PRECISION_CACHE).read_text())
    assert list(cache) == [speed.machine_key("cpu")]  # the votes under load are gone with it


def test_a_clear_winner_under_load_is_kept(monkeypatch, measured):
    monkeypatch.setattr(speed, "cpu_busy", lambda: True)
    measured.seconds = {"float32": 1.0, "bfloat16": 0.5}
    assert _engine().autocast_dtype == torch.bfloat16 and measured.calls == 1
    assert _engine().autocast_dtype == torch.bfloat16 and measured.calls == 1  # cached: nothing measured


@pytest.mark.parametrize("timings,settles_on", [
    ([{"float32": 1.0, "bfloat16": 0.85}] * 10, "bfloat16"),   # the same unclear answer every time
    ([{"float32": 1.0, "bfloat16": 1.05}] * 10, "float32"),
    ([{"float32": 1.0, "bfloat16": b} for b in (0.85, 1.05, 0.88, 0.86, 0.87, 0.84, 1.02, 0.9, 0.8, 0.85)],
     "bfloat16"),                                              # answers that swap, then agree
])
def test_a_long_sequence_of_runs_under_load_settles(monkeypatch, measured, timings, settles_on):
    """A user's own runs keep the load at the core count: "auto" must stop measuring at some
    point, and then pay no measurement at all."""
    monkeypatch.setattr(speed, "cpu_busy", lambda: True)
    calls_per_run = []
    for seconds in timings:
        measured.seconds = seconds
        before = measured.calls
        _engine()
        calls_per_run.append(measured.calls - before)
    assert speed.cached_timings("cpu")["precision"] == settles_on
    last = max(i for i, calls in enumerate(calls_per_run) if calls)
    assert calls_per_run[:last + 1] == [1] * (last + 1)  # one measurement per run, never more
    assert calls_per_run[last + 1:] == [0] * (len(timings) - last - 1)  # then none
    assert last < len(timings) - 3


def test_cpu_busy_compares_the_load_with_the_cores(monkeypatch):
    monkeypatch.setattr(speed.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(speed.os, "getloadavg", lambda: (9.5, 8.0, 7.0))
    assert speed.cpu_busy()
    monkeypatch.setattr(speed.os, "getloadavg", lambda: (0.4, 0.3, 0.2))
    assert not speed.cpu_busy()


def test_a_damaged_cache_is_measured_again(measured, tmp_path):
    (tmp_path / speed.PRECISION_CACHE).write_text("{not json")
    assert _engine().autocast_dtype == torch.bfloat16 and measured.calls == 1


def test_clear_cache_makes_auto_measure_again(measured):
    from helpers.cache import clear_cache

    _engine()
    assert speed.PRECISION_CACHE in [p.name for p in clear_cache()]
    _engine()
    assert measured.calls == 2


@pytest.mark.parametrize("value,optimizer,expected", [
    ("float32", "adam", None),             # beats the measured bfloat16
    ("bfloat16", "adam", torch.bfloat16),
    (" BFloat16 ", "adam", torch.bfloat16),
    ("bfloat16", "lbfgs", None),           # L-BFGS stays float32, without an error
    ("auto", "adam", torch.bfloat16),
])
def test_nst_precision_overrides_every_config(monkeypatch, measured, value, optimizer, expected):
    monkeypatch.setenv("NST_PRECISION", value)
    config_says = "bfloat16" if expected is None and optimizer == "adam" else "float32"
    assert _engine(precision=config_says, optimizer=optimizer).autocast_dtype == expected


def test_a_bad_nst_precision_is_one_clear_line(monkeypatch, measured):
    monkeypatch.setenv("NST_PRECISION", "fp8")
    with pytest.raises(StyleTransferError, match=r"NST_PRECISION='fp8' is not a precision: set it to one of auto"):
        _engine()


# --- decided once, by the engine, and passed on ----------------------------------------------

@pytest.fixture
def decisions(monkeypatch):
    """Counts the calls of speed.pick_precision and records the precision each memory check got."""
    from helpers import memory

    class Decisions:
        picks, checks = 0, []

    pick, check = speed.pick_precision, memory.check_fits

    def counted_pick(*args, **kwargs):
        Decisions.picks += 1
        return pick(*args, **kwargs)

    def recorded_check(config, *args, precision, **kwargs):
        Decisions.checks.append((config.size_px, precision))
        return check(config, *args, precision=precision, **kwargs)

    monkeypatch.setattr(speed, "pick_precision", counted_pick)
    monkeypatch.setattr(memory, "check_fits", recorded_check)
    return Decisions


def test_the_engine_decides_the_precision_once_and_its_memory_check_gets_that_answer(measured, decisions):
    engine = _engine()
    assert engine.autocast_dtype == torch.bfloat16
    assert decisions.picks == 1 and decisions.checks == [(40, torch.bfloat16)]


def test_coarse_to_fine_checks_the_memory_only_in_its_engines_the_first_for_the_largest_size(measured, decisions):
    from helpers.multiscale import stylize_multiscale

    stylize_multiscale(torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 40), (40, 48), weights="random",
                       device="cpu", steps=1)
    assert decisions.picks == 2 and decisions.checks == [(48, torch.bfloat16), (48, torch.bfloat16)]


def test_measuring_times_each_candidate():
    model = load_vgg19("random")
    candidates = speed.candidate_precisions("cpu")
    seconds = speed.measure_precisions(torch.device("cpu"), candidates, model, px=32, warmup=1, rounds=2)
    assert set(seconds) == set(candidates) and all(0 < s < 60 for s in seconds.values())


def test_cuda_graphs_must_be_true_or_false():
    with pytest.raises(StyleTransferError, match="cuda_graphs must be True or False"):
        StyleTransferConfig(cuda_graphs="yes").validate()


def test_no_graph_on_a_cpu():
    engine = StyleTransfer(torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 40), size_px=40, weights="random",
                           device="cpu")
    engine.run(3)
    assert engine.use_cuda_graph is False and engine.graph is None


# --- on a GPU -------------------------------------------------------------------------------

def _pair(precision, **options):
    common = dict(size_px=128, precision=precision, device="cuda", **options)
    return (StyleTransfer(CITY, STARRY, cuda_graphs=False, **common),
            StyleTransfer(CITY, STARRY, cuda_graphs=True, **common))


@gpu
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_cuda_graph_takes_the_same_steps_as_plain_pytorch(precision):
    eager, graphed = _pair(precision)
    eager.run(30)
    graphed.run(30)
    assert graphed.use_cuda_graph and graphed.graph.graph is not None and not eager.use_cuda_graph
    a = [h["total"] for h in eager.history]
    b = [h["total"] for h in graphed.history]
    # The first steps agree closely; later ones drift only by rounding (cuDNN may pick
    # different kernels), so compare the start tightly and the end loosely.
    assert a[0] == pytest.approx(b[0], rel=1e-4)
    assert a[-1] == pytest.approx(b[-1], rel=0.03)
    assert b[-1] < 0.5 * b[0]
    # The best image is tracked inside the graph too.
    assert torch.isfinite(graphed.best_loss) and graphed.best_loss.item() <= min(b) * (1 + 1e-6)


@gpu
def test_changing_a_weight_records_the_graph_again():
    _, engine = _pair("bfloat16")
    engine.run(10)
    first = engine.graph.graph
    engine.update(style_weight=0.0)
    engine.run(5)
    assert engine.graph.graph is not None and engine.graph.graph is not first
    assert engine.history[-1]["style"] == 0.0  # the new weight is in the new graph


@gpu
def test_float16_on_a_gpu_scales_the_loss_and_skips_the_graph():
    eager = StyleTransfer(CITY, STARRY, size_px=128, precision="float32", device="cuda", cuda_graphs=False)
    fp16 = StyleTransfer(CITY, STARRY, size_px=128, precision="float16", device="cuda")
    assert fp16.scaler is not None and not fp16.use_cuda_graph
    eager.run(40)
    fp16.run(40)
    with torch.no_grad():
        a = eager.losses(eager.image)["total"].item()
        b = eager.losses(fp16.image)["total"].item()
    assert b == pytest.approx(a, rel=0.05)


@gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_gram_matrix_of_low_precision_features_is_float32(dtype):
    """bfloat16 features multiplied on the tensor cores with float32 sums (float16 ones are
    converted first): the same Gram matrix, and nearly the same gradient, as float32 features."""
    from helpers import gram_matrix

    x = torch.randn(1, 64, 48, 40, device="cuda").to(dtype).contiguous(memory_format=torch.channels_last)
    fast = x.clone().requires_grad_(True)
    slow = x.clone().float().requires_grad_(True)
    g_fast, g_slow = gram_matrix(fast), gram_matrix(slow)
    assert g_fast.dtype == torch.float32
    torch.testing.assert_close(g_fast, g_slow, rtol=1e-4, atol=1e-5)
    weight = torch.randn_like(g_slow)
    (g_fast * weight).sum().backward()
    (g_slow * weight).sum().backward()
    assert fast.grad.dtype == dtype
    rel = (fast.grad.float() - slow.grad).norm() / slow.grad.norm()
    assert rel < 2e-2


def test_cpus_that_share_a_name_are_measured_apart(monkeypatch):
    """'AMD EPYC' named a Zen 1, a Zen 2 and a Zen 4 on machines we measured: their answers
    must not be taken for each other's."""
    monkeypatch.setattr(speed, "cpu_name", lambda: "AMD EPYC")
    monkeypatch.setattr(speed, "cpu_family_model", lambda: "family 23 model 1")
    zen1 = speed.machine_key("cpu")
    monkeypatch.setattr(speed, "cpu_family_model", lambda: "family 25 model 17")
    assert speed.machine_key("cpu") != zen1 and "family 25 model 17" in speed.machine_key("cpu")
