"""The studio's logic (helpers.studio) without a browser: settings -> config, the run /
stop / continue / save / reset state machine, live slider changes, uploads, and the
widgets' wiring (ipywidgets work without a front end). Tiny images, random VGG weights."""

import json
import threading

import pytest
import torch
from PIL import Image

from helpers import StyleTransferConfig, StyleTransferError
from helpers.studio import (DEFAULT_SETTINGS, STYLE_LAYERS, Studio, StudioSession, format_progress,
                            settings_to_config, uploaded_files)

BASE = StyleTransferConfig(weights="random", precision="float32", seed=0)


def tiny(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, 40, 48, generator=g)


def session(**settings):
    return StudioSession(tiny(1), tiny(2), {"size_px": 48, "steps": 3, **settings}, base_config=BASE,
                         content_name="my photo.jpg", style_name="paint", update_every_s=0.0)


# --- settings -> config -----------------------------------------------------------------

def test_settings_to_config_maps_every_slider():
    config = settings_to_config({"content_weight": 2, "style_weight": 300.0, "tv_weight": 0.5,
                                 "learning_rate": 0.05, "relu1_1": 3.0, "relu5_1": 0.0,
                                 "size_px": 128, "steps": 40, "optimizer": "lbfgs",
                                 "init": "noise", "pooling": "avg"}, BASE)
    assert (config.content_weight, config.style_weight, config.tv_weight) == (2.0, 300.0, 0.5)
    assert (config.size_px, config.steps, config.learning_rate) == (128, 40, 0.05)
    assert (config.optimizer, config.init, config.pooling, config.weights) == ("lbfgs", "noise", "avg", "random")
    assert config.style_layers == STYLE_LAYERS
    # 1 on a layer slider is the paper's equal share, 1/5
    assert config.style_layer_weights == pytest.approx((0.6, 0.2, 0.2, 0.2, 0.0))
    assert settings_to_config({}).style_layer_weights == pytest.approx((0.2,) * 5)


@pytest.mark.parametrize("settings, words", [
    ({"style_weight": -1.0}, "style weight"),
    ({"size_px": 16}, "16 px"),
    ({"steps": 2.5}, "steps"),
    ({"optimizer": "sgd"}, "optimizer"),
    ({"relu9_9": 1.0}, "relu9_9"),
])
def test_bad_settings_are_one_line_errors_and_change_nothing(settings, words):
    with pytest.raises(StyleTransferError, match=words):
        settings_to_config(settings)
    s = session()
    with pytest.raises(StyleTransferError):
        s.set(**settings)
    assert s.settings == {**DEFAULT_SETTINGS, "size_px": 48, "steps": 3}


def test_uploaded_files_reads_ipywidgets_8_and_7():
    v8 = ({"name": "a.png", "type": "image/png", "size": 3, "content": memoryview(b"abc")},)
    v7 = {"a.png": {"metadata": {"name": "a.png", "size": 3}, "content": b"abc"}}
    assert uploaded_files(v8) == uploaded_files(v7) == [("a.png", b"abc")]
    assert uploaded_files(()) == uploaded_files({}) == []


def test_format_progress():
    assert format_progress({}) == ""
    assert format_progress({"step": 40, "steps": 300, "seconds_per_step": 0.12, "eta_s": 31.2}) == \
        "step 40/300 · 0.12 s/step · about 31 s left"
    assert "4.5 min" in format_progress({"step": 0, "steps": 300, "seconds_per_step": 1.0, "eta_s": 270})


# --- the state machine ----------------------------------------------------------------------

def test_run_then_run_again_goes_on_from_the_current_image():
    s = session()
    assert s.state == "ready" and s.image is None
    s.start(background=False)
    assert s.state == "finished" and s.engine.step == 3 and len(s.history) == 3
    engine, image = s.engine, s.image.clone()
    assert not torch.equal(image, s.engine.content.cpu())  # the image moved away from the photo
    s.start(background=False)
    assert s.engine is engine and engine.step == 6  # same engine, same optimizer state
    assert [h["step"] for h in s.history] == list(range(1, 7))
    assert s.progress["step"] == 3 and s.progress["total_step"] == 6


def test_a_live_change_during_a_run_takes_effect_without_restarting():
    events = []

    def on_change(event):
        events.append(event)
        if event == "progress" and s.engine.step == 2 and s.settings["style_weight"] != 1000.0:
            s.set(style_weight=1000.0, relu1_1=4.0)  # as a slider would, while the run goes on

    s = session(steps=8)
    s.on_change = on_change
    s.start()
    assert s.join(timeout=60) and s.state == "finished"
    assert s.engine.step == 8 and len(s.history) == 8  # one run, not restarted
    assert s.engine.config.style_weight == 1000.0
    assert s.engine.config.style_layer_weights[0] == pytest.approx(0.8)
    assert s.changes and s.changes[0][1] == {"style_weight": 1000.0, "relu1_1": 4.0}
    # the style term jumps by the weight's ratio (about 33x) right after the change
    step = s.changes[0][0]
    before, after = s.history[step - 1]["style"], s.history[step]["style"]
    assert after > 10 * before
    assert events.count("progress") >= 4 and events[-1] == "state"


def test_stop_ends_a_background_run_within_a_step_and_run_goes_on():
    started = threading.Event()
    s = session(steps=2000)
    s.on_change = lambda event: started.set() if event == "progress" else None
    assert s.start()
    assert started.wait(60)
    assert s.start() is False  # a second Run while running does nothing
    s.stop()
    assert s.join(timeout=10), "the run did not stop within 10 s"
    assert s.state == "stopped" and 0 < s.engine.step < 2000
    done = s.engine.step
    s.set(steps=3)
    s.start(background=False)
    assert s.state == "finished" and s.engine.step == done + 3


def test_restart_settings_and_new_images_start_again():
    s = session()
    s.start(background=False)
    first = s.engine
    assert s.set(learning_rate=0.05) == "live"
    s.start(background=False)
    assert s.engine is first
    assert s.set(size_px=64) == "next run"
    s.start(background=False)
    assert s.engine is not first and s.engine.step == 3 and max(s.image.shape[-2:]) == 64
    second = s.engine
    s.set_style(tiny(3), "other")
    s.start(background=False)
    assert s.engine is not second and s.style_name == "other"


def test_bad_image_keeps_the_old_one():
    s = session()
    old = s.content
    with pytest.raises(StyleTransferError, match="not an image"):
        s.set_content(b"this is not a picture", "notes.txt")
    assert s.content is old and s.content_name == "my-photo"


def test_a_failure_in_the_run_is_a_state_and_a_message_not_an_exception():
    s = session()
    s.content = torch.rand(1, 3, 40, 48)
    s.settings["size_px"] = 8  # bypasses set()'s validation, as a broken engine would
    s.start(background=False)
    assert s.state == "failed" and "8 px is too small" in s.message


def test_save_writes_a_new_png_with_the_settings_and_never_overwrites(tmp_path):
    s = session()
    with pytest.raises(StyleTransferError, match="press Run first"):
        s.save(tmp_path)
    s.set(style_weight=50.0)
    s.start(background=False)
    first, second = s.save(tmp_path), s.save(tmp_path)
    assert first.name == "studio_my-photo_paint.png" and second.name == "studio_my-photo_paint-1.png"
    with Image.open(first) as png:
        settings = json.loads(png.text["settings"])
        assert png.size == (48, 40)
    assert settings["settings"]["style_weight"] == 50.0 and settings["steps_done"] == 3
    assert settings["content"] == "my-photo" and settings["weights"] == "random"


def test_save_folder_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NST_STUDIO_OUTPUT", str(tmp_path / "made"))
    s = session()
    s.start(background=False)
    assert s.save().parent == tmp_path / "made"


def test_reset_forgets_the_image_and_stops_a_run():
    s = session(steps=2000)
    s.start()
    s.reset()
    assert s.state == "ready" and s.engine is None and s.image is None and s.history == []
    assert s.join(0)


# --- the widgets, driven as a person would (no browser) -------------------------------------------

@pytest.fixture
def studio(tmp_path, monkeypatch):
    monkeypatch.setenv("NST_STUDIO_OUTPUT", str(tmp_path))
    st = Studio(size_px=64, steps=4, base_config=BASE, update_every_s=0.0)
    yield st
    st.session.stop()
    st.session.join(30)


def test_studio_sliders_and_buttons_drive_the_session(studio, tmp_path):
    assert studio.preview.value and studio.buttons["stop"].disabled
    studio.sliders["style_weight"].value = 100.0
    studio.sliders["relu3_1"].value = 2.0
    assert studio.session.settings["style_weight"] == 100.0 and studio.session.settings["relu3_1"] == 2.0
    studio.sliders["optimizer"].value = "lbfgs"
    assert studio.session.settings["learning_rate"] == 1.0  # L-BFGS's own learning rate
    studio.sliders["optimizer"].value = "adam"
    preview = studio.preview.value
    studio.buttons["run"].click()
    assert studio.session.join(60) and studio.session.state == "finished"
    assert studio.preview.value != preview and studio.progress_bar.value == 4
    assert "step 4/4" in studio.progress_text.value and "finished" in studio.status.value
    assert not studio.buttons["run"].disabled and studio.buttons["stop"].disabled
    studio.buttons["save"].click()
    saved = list(tmp_path.glob("*.png"))
    assert len(saved) == 1 and str(saved[0]) in studio.status.value
    studio.buttons["reset"].click()
    assert studio.session.state == "ready" and studio.progress_bar.value == 0


def test_studio_shows_a_bad_upload_as_one_line(studio):
    studio._on_upload("style", ({"name": "broken.png", "content": memoryview(b"\x89PNG oops")},))
    assert "broken.png" in studio.status.value and "color:#b00020" in studio.status.value
    assert studio.session.style_name == "starry_night"
    studio.sliders["steps"].value = 10
    studio._on_save()
    assert "press Run first" in studio.status.value


# --- the notebook's exercise checkers --------------------------------------------------------

def test_check_live_settings(capsys):
    from helpers.exercises import check_live_settings
    from helpers.studio import LIVE_SETTINGS
    assert check_live_settings(set(LIVE_SETTINGS) | {"steps"})
    assert not check_live_settings({"style_weight", "size_px"})
    out = capsys.readouterr().out
    # what is wrong with the answer, and how many are missing, but not which: that would be the answer
    assert "size_px cannot change mid-run" in out and "8 more settings can change" in out
    assert not any(name in out for name in LIVE_SETTINGS if name != "style_weight")
    assert not check_live_settings(set(LIVE_SETTINGS) - {"tv_weight"})
    assert "1 more setting can change" in capsys.readouterr().out
    assert not check_live_settings("style_weight")


def test_check_studio_layer_weights(capsys):
    from helpers.exercises import check_studio_layer_weights
    assert check_studio_layer_weights(lambda s: [s[layer] / 5 for layer in STYLE_LAYERS])
    assert not check_studio_layer_weights(lambda s: [s[layer] for layer in STYLE_LAYERS])
    assert not check_studio_layer_weights(lambda s: [v / 5 for v in s.values()])
    assert not check_studio_layer_weights(lambda s: None)
    out = capsys.readouterr().out
    assert "slider values as they are" in out and "the dict's order" in out and "one number per style layer" in out
    assert not check_studio_layer_weights(lambda s: [s[layer] / sum(s.values()) for layer in STYLE_LAYERS])
    assert "always sum to 1" in capsys.readouterr().out


def test_colour_and_style_scale_settings_restart_and_show_colour():
    config = settings_to_config({"preserve_color": "histogram", "style_scale": 0.75}, BASE)
    assert (config.preserve_color, config.style_scale) == ("histogram", 0.75)
    with pytest.raises(StyleTransferError, match="preserve_color"):
        settings_to_config({"preserve_color": "sepia"}, BASE)
    s = session(preserve_color="luminance")
    s.start(background=False)
    # the engine works on the grey photo; the studio shows and saves its result in the photo's colours
    grey = s.engine.content
    assert torch.allclose(grey[:, 0], grey[:, 1], atol=1e-6)
    assert torch.allclose(s.image, s.engine.shown(s.engine.image.detach()).clamp(0, 1), atol=1e-6)
    assert not torch.allclose(s.image[:, 0], s.image[:, 1], atol=1e-3)
    assert s.set(style_scale=1.5) == "next run"
