"""A fast start: `--help` without PyTorch, torchvision only for its weights, the decoded
original weights cached (and made again when they would not match their file)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import helpers.network as network

ROOT = Path(__file__).resolve().parents[1]


def _python(code, tmp_path, **env):
    env = dict(os.environ, PYTHONPATH=str(ROOT), NST_CACHE_DIR=str(tmp_path), OMP_NUM_THREADS="1", **env)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_help_answers_without_importing_torch(tmp_path):
    out = _python("import sys\n"
                  "from helpers.cli import build_parser\n"
                  "try:\n"
                  "    build_parser().parse_args(['--help'])\n"
                  "except SystemExit:\n"
                  "    pass\n"
                  "print('TORCH', 'torch' in sys.modules)", tmp_path)
    assert "--precision" in out and "NST_PRECISION" in out and "--clear-cache" in out
    assert "TORCH False" in out


def test_import_helpers_is_light_and_names_load_on_use(tmp_path):
    out = _python("import sys, helpers\n"
                  "print('TORCH', 'torch' in sys.modules)\n"
                  "from helpers import load_vgg19, StyleTransferConfig\n"
                  "print('CONFIG', StyleTransferConfig().precision)", tmp_path)
    assert "TORCH False" in out and "CONFIG auto" in out


def test_the_original_weights_need_no_torchvision(tmp_path):
    out = _python("import sys\n"
                  "from helpers import load_vgg19\n"
                  "load_vgg19('caffe'); load_vgg19('random')\n"
                  "print('TORCHVISION', 'torchvision' in sys.modules)", tmp_path)
    assert "TORCHVISION False" in out


def test_the_layer_stack_is_torchvisions():
    torchvision = pytest.importorskip("torchvision")
    ours = network.vgg19_layers()
    theirs = torchvision.models.vgg19(weights=None).features
    assert str(ours) == str(theirs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


@pytest.fixture
def fresh_cache(monkeypatch, tmp_path):
    """An empty cache folder, and no decoded weights kept in memory."""
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path))
    network._caffe_state_dict.cache_clear()
    yield tmp_path
    network._caffe_state_dict.cache_clear()


def _cached_file(folder):
    files = list(folder.glob("vgg19-caffe-*-decoded-float32.pt"))
    assert len(files) == 1 and network.CAFFE_WEIGHTS_SHA256[:12] in files[0].name
    return files[0]


def test_decoded_weights_are_cached_and_reused(monkeypatch, fresh_cache, caffe_model):
    first = network._caffe_state_dict()
    cached = _cached_file(fresh_cache)
    network._caffe_state_dict.cache_clear()
    monkeypatch.setattr(network, "_decode_caffe", lambda path: pytest.fail("decoded again"))
    monkeypatch.setattr(network.hashlib, "sha256", lambda data: pytest.fail("hashed again"))
    second = network._caffe_state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert torch.equal(second["21.weight"], caffe_model.features[21].weight)
    assert cached.stat().st_size > 80e6  # float32: 20 million numbers


def test_decoded_weights_are_made_again_when_the_file_changed(monkeypatch, fresh_cache):
    network._caffe_state_dict()
    network._caffe_state_dict.cache_clear()
    source = network.caffe_weights_path()
    real_stat = type(source).stat

    def touched(path, *args, **kwargs):  # the same file with another modification time
        st = real_stat(path, *args, **kwargs)
        if path == source:
            return os.stat_result(st[:8] + (st.st_mtime + 1, st.st_ctime))
        return st

    decoded = []
    real_decode = network._decode_caffe
    monkeypatch.setattr(type(source), "stat", touched)
    monkeypatch.setattr(network, "_decode_caffe", lambda path: decoded.append(path) or real_decode(path))
    network._caffe_state_dict()
    assert decoded == [source]


def test_a_damaged_cache_is_decoded_again(fresh_cache):
    network._caffe_state_dict()
    cached = _cached_file(fresh_cache)
    cached.write_bytes(b"half a file")
    network._caffe_state_dict.cache_clear()
    state = network._caffe_state_dict()
    assert len(state) == 32 and _cached_file(fresh_cache).stat().st_size > 80e6


def test_clear_cache_from_the_command_line(tmp_path):
    (tmp_path / "precision.json").write_text("{}")
    (tmp_path / "vgg19-caffe-c34748d2a8b1-decoded-float32.pt").write_bytes(b"x")
    (tmp_path / "keep.txt").write_text("not ours")
    env = dict(os.environ, PYTHONPATH=str(ROOT), NST_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "helpers", "--clear-cache"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Deleted 2 cached files" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_a_cpu_run_does_not_import_the_compiler(tmp_path):
    # torch.optim.Optimizer imports torch._dynamo when built (1-1.5 s of a 2-core CPU's start);
    # the engine's CPU Adam (speed.Adam) does not, L-BFGS still may
    out = _python("import sys, torch\n"
                  "from helpers import stylize\n"
                  "stylize(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), steps=2, weights='random',\n"
                  "        device='cpu', precision='float32')\n"
                  "print('DYNAMO', 'torch._dynamo' in sys.modules)", tmp_path)
    assert "DYNAMO False" in out


@pytest.mark.parametrize("set_to_none", [True, False])
def test_the_cpu_adam_makes_torch_adams_steps_exactly(set_to_none):
    from helpers import speed

    target = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))

    def run(make):
        x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
        x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
        opt = make(x)
        for i in range(7):
            if i == 4:  # a live change of the learning rate, as the studio makes
                opt.param_groups[0]["lr"] = 0.05
            opt.zero_grad(set_to_none=set_to_none)
            (x - target).pow(3).pow(2).mean().backward()
            opt.step()
        return x.detach()

    mine = run(lambda x: speed.Adam(x, lr=0.02))
    assert torch.equal(mine, run(lambda x: torch.optim.Adam([x], lr=0.02)))
    assert not torch.equal(mine, run(lambda x: speed.Adam(x, lr=0.03)))  # the learning rate counts
