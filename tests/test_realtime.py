"""The real-time network (helpers.realtime): shapes, instance normalization, training that
lowers the loss, checkpoints that resume, model files that load safely or fail in one line."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from helpers.config import TrainingConfig
from helpers.errors import StyleTransferError
from helpers.images import load_image
from helpers.realtime import (PerceptualLoss, PhotoCrops, Trainer, TransformNet, apply_model, check_pass_fits, load_model, norm_layer,
                              photo_files, save_model)

ROOT = Path(__file__).resolve().parents[1]
STARRY = ROOT / "images/style/starry_night.jpg"
PHOTOS = ROOT / "images/photos"
#: small enough for a test: 40 px crops of photos at 64 px, two per batch
TINY = dict(photo_px=64, crop_px=40, style_px=64, batch_size=2, precision="float32", device="cpu")


@pytest.mark.parametrize("norm", ["instance", "batch"])
@pytest.mark.parametrize("hw", [(33, 47), (64, 64), (7, 5), (130, 97)])
def test_output_has_the_input_size_for_any_size(norm, hw):
    net = TransformNet(width=8, residual_blocks=1, norm=norm)
    out = net(torch.rand(2, 3, *hw))
    assert out.shape == (2, 3, *hw) and out.dtype == torch.float32


def test_instance_norm_normalizes_each_image_on_its_own():
    layer = norm_layer("instance", 4)
    x = torch.randn(3, 4, 9, 11) * torch.tensor([1.0, 5.0, 0.5]).view(3, 1, 1, 1) + 7
    y = layer(x)
    assert torch.allclose(y.mean(dim=(2, 3)), torch.zeros(3, 4), atol=1e-5)
    assert torch.allclose(y.var(dim=(2, 3), unbiased=False), torch.ones(3, 4), atol=1e-3)
    # the same picture in another batch is normalized the same: no statistics are shared
    assert torch.allclose(layer(x[:1]), y[:1], atol=1e-6)


def test_a_picture_does_not_depend_on_its_batch_with_instance_norm_but_does_with_batch_norm():
    torch.manual_seed(0)
    photo, others = torch.rand(1, 3, 32, 32), torch.rand(3, 3, 32, 32)
    for norm, independent in (("instance", True), ("batch", False)):
        net = TransformNet(width=8, residual_blocks=1, norm=norm).train()
        alone, in_batch = net(photo), net(torch.cat([photo, others]))[:1]
        assert torch.allclose(alone, in_batch, atol=1e-5) == independent, norm


def test_unknown_norm_is_a_clear_error():
    with pytest.raises(StyleTransferError, match="unknown normalization 'layer'"):
        TransformNet(norm="layer")
    with pytest.raises(StyleTransferError, match="norm"):
        TrainingConfig(norm="layer").validate()


def test_photo_files_never_include_the_painting_even_under_another_name(tmp_path):
    for name in ("a.jpg", "b.png"):
        Image.new("RGB", (64, 48), "white").save(tmp_path / name)
    shutil.copy(STARRY, tmp_path / "copy_of_the_painting.jpg")
    (tmp_path / "notes.txt").write_text("not a photo")
    files = photo_files(tmp_path, exclude=[STARRY])
    assert [f.name for f in files] == ["a.jpg", "b.png"]
    (tmp_path / "sub").mkdir()
    with pytest.raises(StyleTransferError, match="no photos"):
        photo_files(tmp_path / "sub")
    with pytest.raises(StyleTransferError, match="does not exist"):
        photo_files(tmp_path / "nope")


def test_every_photo_gives_crops_whatever_its_shape(tmp_path):
    """A wide photo at PHOTO_PX would be shorter than a crop: it is enlarged until it holds one."""
    Image.new("RGB", (400, 100), "white").save(tmp_path / "wide.png")
    Image.new("RGB", (64, 64), "white").save(tmp_path / "square.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    crops = PhotoCrops(photo_files(tmp_path), photo_px=64, crop_px=40, batch_size=3)
    assert len(crops) == 2 and [f.name for f in crops.skipped] == ["broken.jpg"]
    assert sorted(tuple(p.shape) for p in crops.photos) == [(3, 40, 160), (3, 64, 64)]
    assert crops.batch().shape == (3, 3, 40, 40)
    (tmp_path / "wide.png").unlink()
    (tmp_path / "square.png").unlink()
    with pytest.raises(StyleTransferError, match="none of the 1 photos could be read"):
        PhotoCrops(photo_files(tmp_path), photo_px=64, crop_px=40, batch_size=3)


def test_the_loss_is_the_optimizations_loss():
    """For one photo at the painting's size, the training loss equals StyleTransfer.losses given
    the same settings (the training's own layers, shares and weights)."""
    from helpers.optimization import StyleTransfer

    config = TrainingConfig(**TINY)
    engine = StyleTransfer(ROOT / "images/content/city.jpg", STARRY, size_px=64, precision="float32", device="cpu",
                           style_layers=config.style_layers, style_layer_weights=config.style_layer_weights,
                           style_weight=config.style_weight, content_layers=config.content_layers)
    loss = PerceptualLoss(STARRY, config, torch.device("cpu"), dtype=None)
    picture = torch.rand_like(engine.content)
    ours, theirs = loss(engine.content, picture), engine.losses(picture)
    for k in ("content", "style", "tv", "total"):
        assert torch.allclose(ours[k], theirs[k], rtol=1e-4), k


def test_the_trainer_decides_the_precision_once_for_both_networks(monkeypatch):
    from helpers import speed

    picks = []
    pick = speed.pick_precision
    monkeypatch.setattr(speed, "pick_precision", lambda *args, **kwargs: picks.append(args) or pick(*args, **kwargs))
    trainer = Trainer(STARRY, PHOTOS, TrainingConfig(steps=1, **TINY))
    assert len(picks) == 1 and trainer.dtype is None and trainer.loss.dtype is trainer.dtype


def test_a_few_training_steps_lower_the_loss():
    trainer = Trainer(STARRY, PHOTOS, TrainingConfig(steps=12, **TINY))
    batch = trainer.data.batch()

    def loss():
        with torch.no_grad():
            return trainer.loss(batch, trainer.net.eval()(batch))["total"].item()

    before = loss()
    trainer.run()
    assert trainer.step == 12 and len(trainer.history) == 12
    assert loss() < 0.7 * before


def test_content_only_training_learns_to_keep_the_photo():
    """The sanity check of issue 22: with style weight 0 the network only has to pass the photo
    through, and a few steps must lower the content term on photos it was not trained on.
    (A network that cannot learn a near-identity cannot be balanced against a style.)"""
    trainer = Trainer(STARRY, PHOTOS, TrainingConfig(steps=15, style_weight=0.0, tv_weight=0.0, **TINY))
    held_out = torch.cat([load_image(ROOT / f"images/content/{name}.jpg", 64)[..., :40, :40]
                          for name in ("city", "cat", "astronaut")])

    def content():
        with torch.no_grad():
            return trainer.loss(held_out, trainer.net.eval()(held_out))["content"].item()

    before = content()
    trainer.run()
    assert all(h["style"] == 0 for h in trainer.history)
    assert content() < 0.7 * before


def test_a_short_training_with_the_default_balance_lowers_both_terms_on_held_out_photos():
    """The defaults (style x 3 on relu1_1 ... relu5_1, a content-only warm-up, scaled down here
    to 4 steps): 24 tiny steps lower the content and the style term of photos never trained on."""
    trainer = Trainer(STARRY, PHOTOS, TrainingConfig(steps=24, warmup_steps=4, **TINY))
    held_out = torch.cat([load_image(ROOT / f"images/content/{name}.jpg", 64)[..., :40, :40]
                          for name in ("city", "cat", "astronaut")])

    def terms():
        with torch.no_grad():
            t = trainer.loss(held_out, trainer.net.eval()(held_out))
        return t["content"].item(), t["style"].item()

    (content0, style0), _ = terms(), trainer.run()
    content, style = terms()
    assert content < 0.8 * content0 and style < 0.8 * style0, (content0, content, style0, style)


def test_the_warm_up_trains_content_only_then_ramps_the_style_in():
    config = TrainingConfig(style_weight=30.0, warmup_steps=4)
    assert [config.style_weight_at(s) for s in range(10)] == [0, 0, 0, 0, 7.5, 15, 22.5, 30, 30, 30]
    assert TrainingConfig(style_weight=30.0, warmup_steps=0).style_weight_at(0) == 30
    trainer = Trainer(STARRY, PHOTOS, TrainingConfig(steps=6, style_weight=30.0, warmup_steps=2, **TINY))
    trainer.run()
    styles = [h["style"] for h in trainer.history]
    assert styles[:2] == [0, 0] and all(s > 0 for s in styles[2:])
    with pytest.raises(StyleTransferError, match="warmup steps"):
        TrainingConfig(warmup_steps=-1).validate()


def test_an_interrupted_training_resumes_where_it_stopped(tmp_path):
    """4 steps, then a new Trainer on the same checkpoint: 2 more; the same weights as 6 at once."""
    config = TrainingConfig(steps=6, checkpoint_every=2, seed=3, **TINY)
    whole = Trainer(STARRY, PHOTOS, config)
    whole.run()

    first = Trainer(STARRY, PHOTOS, config, checkpoint=tmp_path / "run.ckpt")
    first.run(steps=4)
    second = Trainer(STARRY, PHOTOS, config, checkpoint=tmp_path / "run.ckpt")
    assert second.step == 4 and len(second.history) == 4
    second.run()
    assert second.step == 6
    for (name, a), b in zip(whole.net.state_dict().items(), second.net.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name
    assert [h["total"] for h in second.history] == pytest.approx([h["total"] for h in whole.history], rel=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]  # no temporary files left


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "run.ckpt"
    trainer = Trainer(STARRY, PHOTOS, TrainingConfig(steps=2, **TINY), checkpoint=path)
    trainer.run()
    good = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"half a checkp")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(StyleTransferError, match="No space left"):
        trainer.save_checkpoint()
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]


def test_resuming_with_other_settings_is_a_clear_error(tmp_path):
    path = tmp_path / "run.ckpt"
    Trainer(STARRY, PHOTOS, TrainingConfig(steps=1, **TINY), checkpoint=path).run()
    with pytest.raises(StyleTransferError, match=r"other settings \(style_weight\)"):
        Trainer(STARRY, PHOTOS, TrainingConfig(steps=2, style_weight=5.0, **TINY), checkpoint=path)


def test_a_model_file_round_trips_and_loads_with_weights_only(tmp_path):
    trainer = Trainer(STARRY, PHOTOS, TrainingConfig(steps=1, width=8, residual_blocks=2, **TINY))
    trainer.run()
    path = save_model(trainer.net, tmp_path / "starry.pt", trainer.settings())
    raw = torch.load(path, weights_only=True)  # never runs code from the file
    assert raw["architecture"] == {"width": 8, "residual_blocks": 2, "norm": "instance", "skip": False}
    net, settings = load_model(path)
    assert settings["style"].endswith("starry_night.jpg") and settings["steps_done"] == 1
    photo = ROOT / "images/content/city.jpg"
    assert torch.equal(apply_model(net, photo, 48), trainer.stylize(load_image(photo, 48)))
    with pytest.raises(StyleTransferError, match="already exists"):
        save_model(trainer.net, path)


class Foreign:
    pass


@pytest.mark.parametrize("kind", ["picture", "truncated", "foreign dict", "checkpoint", "pickled class",
                                  "wrong shapes", "missing"])
def test_a_bad_model_file_is_one_clear_line(tmp_path, kind):
    path = tmp_path / "model.pt"
    net = TransformNet(width=8, residual_blocks=1)
    if kind == "picture":
        shutil.copy(STARRY, path)
    elif kind == "truncated":
        save_model(net, path)
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == "foreign dict":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "checkpoint":
        Trainer(STARRY, PHOTOS, TrainingConfig(steps=1, width=8, residual_blocks=1, **TINY),
                checkpoint=path).run()
    elif kind == "pickled class":
        torch.save({"format": "nst-tutorial/transform-net", "x": Foreign()}, path)
    elif kind == "wrong shapes":
        save_model(net, path)
        state = torch.load(path, weights_only=True)
        state["architecture"]["width"] = 16
        torch.save(state, path)
    with pytest.raises(StyleTransferError) as err:
        load_model(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message


# --- the command line ------------------------------------------------------------------------------

def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "helpers", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_train_then_apply_from_the_command_line(tmp_path):
    tiny = ["--steps", "3", "--crop", "40", "--photo-size", "64", "--style-size", "64", "--batch-size", "2",
            "--precision", "float32", "--device", "cpu"]
    done = _cli("train", str(STARRY), str(PHOTOS), "-o", "starry.pt", *tiny, "--preview", str(PHOTOS / "apple.jpg"),
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Saved starry.pt (3 steps" in done.stdout and "3/3" in done.stderr
    assert (tmp_path / "starry.pt.ckpt").exists() and (tmp_path / "starry-preview.png").exists()
    again = _cli("train", str(STARRY), str(PHOTOS), "-o", "starry.pt", *tiny, cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "already exists" in again.stderr

    city = tmp_path / "city.jpg"
    shutil.copy(ROOT / "images/content/city.jpg", city)
    one = _cli("apply", "starry.pt", "city.jpg", "--size", "64", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert Image.open(tmp_path / "city-starry.png").size == (64, 48)
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.jpg", "b.png"):
        Image.new("RGB", (50, 40), "red").save(folder / name)
    many = _cli("apply", "starry.pt", "in", "-o", "out", cwd=tmp_path)
    assert many.returncode == 0, many.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a-starry.png", "b-starry.png"]
    before = (tmp_path / "out/a-starry.png").read_bytes()
    refused = _cli("apply", "starry.pt", "in", "-o", "out", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "already exists" in refused.stderr
    assert (tmp_path / "out/a-starry.png").read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["apply", "nope.pt", "x.jpg"], "x.jpg does not exist"),
    (["apply", "painting.jpg", "painting.jpg", "-o", "out.png"], "is not a style model file"),
    (["train", "nope.jpg"], "nope.jpg does not exist"),
    (["train", "painting.jpg", "empty"], "no photos"),
    (["train", "painting.jpg", "-o", "model.txt"], "must end in .pt"),
    (["train", "painting.jpg", "--crop", "300"], "crop size 300 px is larger"),
    (["train", "painting.jpg", "--limit", "5"], "--limit goes with --download"),
    (["train", "painting.jpg", "--steps", "0"], "steps must be a positive"),
    (["apply", "painting.jpg", "painting.jpg", "--size", "0"], "too small"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    shutil.copy(STARRY, tmp_path / "painting.jpg")
    (tmp_path / "empty").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    done = _cli(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_photo_too_large_for_memory_is_refused_in_one_line_with_a_size_that_fits(tmp_path, monkeypatch):
    """A phone's 4000 x 3000 photo needs about 12 GB for one pass: with 4 GB free, `apply` says so
    before writing anything and names a --size that fits; that size passes the check, one step
    (64 px) more does not; a folder with one such photo writes no picture at all."""
    import re

    import helpers.memory
    from helpers.realtime_cli import run

    net = TransformNet()
    phone = tmp_path / "phone.jpg"
    Image.new("RGB", (4000, 3000), "grey").save(phone)
    with pytest.raises(StyleTransferError) as refused:
        check_pass_fits(net, phone, available=4e9)
    message = str(refused.value)
    assert re.fullmatch(r"phone\.jpg at 4000×3000 px needs about 11\.9 GB for one pass and this machine has "
                        r"4\.0 GB free: pass --size (\d+) or less", message), message
    fits = int(re.search(r"--size (\d+)", message).group(1))
    check_pass_fits(net, phone, fits, available=4e9)
    with pytest.raises(StyleTransferError):
        check_pass_fits(net, phone, fits + 64, available=4e9)
    check_pass_fits(net, phone, available=None)  # free memory unknown: no check
    model = save_model(net, tmp_path / "m.pt")
    (tmp_path / "in").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "in" / "small.jpg")
    shutil.copy(phone, tmp_path / "in" / "phone.jpg")
    monkeypatch.setattr(helpers.memory, "available_bytes", lambda device: 4e9)
    with pytest.raises(StyleTransferError, match="phone.jpg at 4000×3000 px"):
        run(["apply", str(model), str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--device", "cpu"])
    assert not any((tmp_path / "out").glob("*.png"))


def test_apply_says_when_a_photo_is_far_larger_than_the_network_learned_on(tmp_path):
    """Strokes keep their size in pixels: a photo 4x the training photos' size gets a one-line note
    naming it and a --size; with --size, or a photo of about the trained size, no note."""
    save_model(TransformNet(width=8, residual_blocks=1), tmp_path / "m.pt", {"photo_px": 32})
    Image.new("RGB", (128, 96)).save(tmp_path / "big.jpg")
    Image.new("RGB", (60, 40)).save(tmp_path / "small.jpg")
    big = _cli("apply", "m.pt", "big.jpg", "--device", "cpu", cwd=tmp_path)
    assert big.returncode == 0, big.stderr
    assert ("Note: this network learned its strokes on photos of 32 px, and big.jpg is 128 px across, so they "
            "come out about 4 times finer; --size 64 makes them bolder") in big.stderr
    for args in (["big.jpg", "--size", "64", "--overwrite"], ["small.jpg"]):
        quiet = _cli("apply", "m.pt", *args, "--device", "cpu", cwd=tmp_path)
        assert quiet.returncode == 0 and "Note:" not in quiet.stderr, quiet.stderr


def test_with_skip_the_untrained_network_returns_the_photo_and_its_file_says_so(tmp_path):
    net = TransformNet(width=8, residual_blocks=1, skip=True)
    photo = torch.rand(1, 3, 37, 29)
    assert torch.equal(net(photo), photo)
    loaded, _ = load_model(save_model(net, tmp_path / "skip.pt"))
    assert loaded.skip and torch.equal(loaded(photo), photo)


BUNDLED_STEPS = 20818  # images/models/starry_night.pt: all its stages


def test_the_bundled_network_records_its_stages_and_keeps_the_photo():
    """images/models/starry_night.pt: trained in stages on the 28 bundled photos, never shown the
    held-out photos. Each stage is recorded whole (every training setting), the file's own settings
    are its last stage's (what a further stage would continue with), the last stage uses the
    command line's loss layers (relu4_2; relu1_1 ... relu5_1 with the default shares), and the
    stages add up to the steps and seconds it reports. On the held-out city it keeps more of the
    photo than a flat grey picture does (the first network, style x 100, scored worse than grey)
    and is far nearer the painting's style than the untrained network."""
    from helpers.optimization import StyleTransfer

    net, settings = load_model(ROOT / "images/models/starry_night.pt")
    plain = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731 (a file stores lists)
    defaults = TrainingConfig().as_dict()
    recipe = [k for k in defaults if k not in ("steps", "device", "report_every", "checkpoint_every")]
    stages = settings["stages"]
    for i, stage in enumerate(stages, start=1):
        assert [k for k in recipe if k not in stage] == [], f"stage {i}"
    for key in recipe:
        assert plain(settings[key]) == plain(stages[-1][key]), key
    for key in ("content_layers", "style_layers", "style_layer_weights"):
        assert plain(stages[-1][key]) == plain(defaults[key]), key
    assert settings["steps_done"] == sum(s["steps_done"] for s in stages) == BUNDLED_STEPS
    assert settings["seconds"] == pytest.approx(sum(s["seconds"] for s in stages), abs=1)
    assert settings["photos"] == 28
    assert Path(settings["style"]).name == "starry_night.jpg"
    training = {p.read_bytes() for p in PHOTOS.iterdir()}
    assert all(p.read_bytes() not in training for p in (ROOT / "images/content").iterdir())  # held out
    city = ROOT / "images/content/city.jpg"
    judge = StyleTransfer(city, STARRY, size_px=128, precision="float32", device="cpu")
    with torch.no_grad():
        trained = judge.losses(apply_model(net, city, 128))
        untrained = judge.losses(apply_model(TransformNet().eval(), city, 128))
        grey = judge.losses(torch.full_like(judge.photo, 0.5))
    assert trained["content"] < 0.8 * grey["content"]
    assert trained["style"] < untrained["style"] / 10


def test_every_training_photo_is_credited_and_none_is_held_out():
    """images/photos: each file named in images/CREDITS.md, and none of them one of the held-out
    photos (images/content) by content."""
    credits = (ROOT / "images/CREDITS.md").read_text(encoding="utf-8")
    photos = photo_files(PHOTOS)
    assert len(photos) >= 28
    assert [p.name for p in photos if f"`{p.name}`" not in credits] == []
    held_out = {p.read_bytes() for p in (ROOT / "images/content").iterdir()}
    assert [p.name for p in photos if p.read_bytes() in held_out] == []
