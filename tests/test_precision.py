"""The fast paths: float16 with loss scaling, the choice of precision, CUDA graphs on a GPU.

The GPU tests are skipped on a machine without CUDA (CI has none); they run wherever a GPU
is, and ran on the GPU named in benchmarks/results/.
"""

import pytest
import torch

from helpers import StyleTransfer, StyleTransferConfig, StyleTransferError
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


@pytest.mark.parametrize("bf16,fp16,optimizer,expected", [
    (True, False, "adam", torch.bfloat16),   # a CPU with AVX-512 BF16, an A100, an H100
    (False, True, "adam", torch.float16),    # a T4: tensor cores, no bfloat16
    (False, True, "lbfgs", None),            # L-BFGS: always float32
    (True, False, "lbfgs", None),
    (False, False, "adam", None),            # anything else: float32
])
def test_auto_precision_picks_the_fastest_safe_dtype(monkeypatch, bf16, fp16, optimizer, expected):
    monkeypatch.setattr(speed, "bf16_supported", lambda device: bf16)
    monkeypatch.setattr(speed, "fp16_tensor_cores", lambda device: fp16)
    engine = StyleTransfer(torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 40), size_px=40, weights="random",
                           optimizer=optimizer, device="cpu")
    assert engine.autocast_dtype == expected


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
