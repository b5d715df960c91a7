"""The interactive studio of notebook 05: sliders, a live preview and a Stop button around
the same engine the command line uses (`helpers.optimization.StyleTransfer`).

Two layers, so that the logic can be tested without a browser:

- `StudioSession`: the logic. Slider settings become a `StyleTransferConfig`
  (`settings_to_config`); Run takes the engine's steps in a background thread, a few at a
  time, and applies slider changes between those chunks (the image carries on from where
  it is, so a learner sees what each knob does); Stop is a `threading.Event`; Save writes
  a PNG with the settings in its metadata and never overwrites; Reset starts again.
- `Studio`: the ipywidgets front end (thumbnails, uploads, sliders, buttons, a progress
  bar, the preview and the loss curve). The background thread only ever sets widget
  values (PNG bytes, numbers, text), never `with out:`, so the kernel stays free to
  deliver button clicks. Works with ipywidgets 8 (JupyterLab 4, Notebook 7) and 7 (Colab).
"""

import io
import json
import os
import re
import threading
import time
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import memory
from .errors import StyleTransferError
from .images import bundled_images, free_path, images_dir, load_image, save_image, tensor_to_image
from .config import DEFAULT_LEARNING_RATES, PAPER_STYLE_LAYERS, StyleTransferConfig
from .optimization import StyleTransfer
from .plots import plot_losses

STYLE_LAYERS = PAPER_STYLE_LAYERS

#: What the sliders hold. A style layer's value is relative: 1 is its default share (1/5).
_ENGINE = StyleTransferConfig()
DEFAULT_SETTINGS = {
    **{name: float(getattr(_ENGINE, name)) for name in ("content_weight", "style_weight", "tv_weight")},
    "learning_rate": _ENGINE.lr(),
    **{layer: 1.0 for layer in STYLE_LAYERS},
    **{name: getattr(_ENGINE, name) for name in ("size_px", "steps", "optimizer", "init", "pooling",
                                                 "preserve_color", "style_scale")},
}
#: Settings the engine can change between two steps, keeping the image and the optimizer.
LIVE_SETTINGS = ("content_weight", "style_weight", "tv_weight", "learning_rate") + STYLE_LAYERS
#: Settings that change the targets or the optimizer: the next Run starts again from the start.
RESTART_SETTINGS = ("size_px", "optimizer", "init", "pooling", "preserve_color", "style_scale")
#: Uploaded pictures are kept at most this large; runs resize them again to the image size.
MAX_SOURCE_PX = 1024


def settings_to_config(settings, base=None):
    """The slider settings (any subset of DEFAULT_SETTINGS) as a validated StyleTransferConfig.

    A style layer slider w_l is relative to the default equal share, so the engine gets
    style_layer_weights = (w_relu1_1 / 5, ..., w_relu5_1 / 5): all sliders at 1 is the
    paper's equal weighting. `base` supplies everything the studio has no slider for
    (content layers, seed, device, weights file).
    """
    unknown = set(settings) - set(DEFAULT_SETTINGS)
    if unknown:
        raise StyleTransferError(f"unknown studio setting {sorted(unknown)[0]!r}")
    s = {**DEFAULT_SETTINGS, **settings}
    return (base or StyleTransferConfig()).replace(
        size_px=_whole(s["size_px"], "image size"), steps=_whole(s["steps"], "steps"),
        content_weight=_number(s["content_weight"]), style_weight=_number(s["style_weight"]),
        tv_weight=_number(s["tv_weight"]), learning_rate=_number(s["learning_rate"]),
        style_layers=STYLE_LAYERS,
        style_layer_weights=tuple(_number(s[layer]) / len(STYLE_LAYERS) for layer in STYLE_LAYERS),
        optimizer=s["optimizer"], init=s["init"], pooling=s["pooling"],
        preserve_color=s["preserve_color"], style_scale=_number(s["style_scale"]),
    ).validate()


def _number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _whole(value, what):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise StyleTransferError(f"{what} must be a whole number, got {value!r}")
    return int(value)


def uploaded_files(value):
    """[(file name, bytes)] from a FileUpload's value.

    ipywidgets 8 gives a tuple of dicts {"name", "content" (memoryview), ...}; ipywidgets 7
    (Colab) gives a dict {file name: {"metadata": {...}, "content": bytes}}.
    """
    if not value:
        return []
    if isinstance(value, dict):
        return [(str(name), bytes(item["content"])) for name, item in value.items()]
    return [(str(item["name"]), bytes(item["content"])) for item in value]


def output_dir():
    """Where Save writes: $NST_STUDIO_OUTPUT if set, else the repository's `outputs/` folder."""
    if os.environ.get("NST_STUDIO_OUTPUT"):
        return Path(os.environ["NST_STUDIO_OUTPUT"])
    try:
        return images_dir().parent / "outputs"
    except StyleTransferError:
        return Path.cwd() / "outputs"


def _file_stem(name):
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(str(name)).stem).strip("-")
    return stem[:40] or "image"


class StudioSession:
    """The studio's logic: settings, a background run in chunks, Stop, Save and Reset.

    State: "ready" (nothing run yet, or after Reset), "running", "stopping", "stopped",
    "finished" or "failed"; `message` says more in one line. `on_change(event)` is called,
    from the run's thread too, with "state", "progress", "images" or "reset".

    Run continues from the current image for `steps` more steps. Weights and the learning
    rate (LIVE_SETTINGS) changed during a run take effect from the next chunk of steps;
    size, optimizer, init and pooling (RESTART_SETTINGS) and new images make the next Run
    start again from its init.
    """

    def __init__(self, content, style, settings=None, *, base_config=None,
                 content_name="content", style_name="style", update_every_s=0.5, on_change=None):
        self.base_config = base_config or StyleTransferConfig()
        self.settings = dict(DEFAULT_SETTINGS)
        self.on_change = on_change
        self.update_every_s = update_every_s
        self.state, self.message = "ready", ""
        self.engine = None
        self.image = None  #: the latest image of the run, on the CPU (None before the first Run)
        self.progress = {}
        self.changes = []  #: (step, {setting: value}) for every live change during a run
        self._pending, self._restart, self._resume_from = {}, True, None
        self._lock, self._state_lock = threading.Lock(), threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self.set(**(settings or {}))
        self.set_content(content, content_name, notify=False)
        self.set_style(style, style_name, notify=False)

    # --- settings and images ----------------------------------------------------------

    def set(self, **changes):
        """Change slider settings; return "live", "next run" or "" (nothing changed).

        Bad values raise a one-line StyleTransferError and change nothing.
        """
        new = {**self.settings, **changes}
        settings_to_config(new, self.base_config)  # validates every value
        changed = {k: v for k, v in changes.items() if self.settings.get(k) != v}
        if not changed:
            return ""
        with self._lock:
            self.settings = new
            live = {k: v for k, v in changed.items() if k in LIVE_SETTINGS}
            self._pending.update(live)
            if set(changed) & set(RESTART_SETTINGS):
                self._restart = True
        return "next run" if set(changed) & set(RESTART_SETTINGS) else "live"

    @property
    def config(self):
        return settings_to_config(self.settings, self.base_config)

    def set_content(self, source, name="content", notify=True):
        """Use `source` (anything load_image reads) as the photo; the next Run starts afresh."""
        self.content, self.content_name = self._load(source), _file_stem(name)
        self._restart = True
        if notify:
            self._notify("images")

    def set_style(self, source, name="style", notify=True):
        """Use `source` as the painting; the next Run starts afresh."""
        self.style, self.style_name = self._load(source), _file_stem(name)
        self._restart = True
        if notify:
            self._notify("images")

    @staticmethod
    def _load(source):
        image = load_image(source)
        if max(image.shape[-2:]) > MAX_SOURCE_PX:
            image = load_image(image, MAX_SOURCE_PX)
        return image

    # --- the run ------------------------------------------------------------------------

    @property
    def running(self):
        return self.state in ("running", "stopping")

    @property
    def history(self):
        """The loss history since the last restart: dicts step, content, style, tv, total."""
        return list(self.engine.history) if self.engine is not None else []

    def start(self, background=True):
        """Run `steps` more steps, in a background thread (or here if not `background`).

        Returns False (and does nothing) when a run is already going.
        """
        if self.running:
            return False
        self._stop.clear()
        self._set_state("running", "starting…")
        if background:
            self._thread = threading.Thread(target=self._work, name="nst-studio", daemon=True)
            self._thread.start()
        else:
            self._work()
        return True

    def stop(self):
        """Ask the run to stop; it ends within one optimizer step."""
        self._stop.set()
        with self._state_lock:
            if not self.running:
                return
            self.state, self.message = "stopping", "stopping…"
        self._notify("state")

    def join(self, timeout=None):
        """Wait for the background run to end; return True if it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def reset(self):
        """Stop any run and forget the image: the next Run starts from its init again."""
        self.stop()
        if not self.join(timeout=60):
            raise StyleTransferError("the run did not stop within 60 s; try Reset again")
        with self._lock:
            self.engine, self.image, self.progress, self.changes = None, None, {}, []
            self._pending, self._restart, self._resume_from = {}, True, None
        self._set_state("ready", "")
        self._notify("reset")

    def _work(self):
        try:
            engine = self._engine_for_run()
            first, chunk, seconds_per_step = engine.step, 2, None
            while not self._stop.is_set():
                self._apply_pending(engine)
                end = first + int(self.settings["steps"])  # the steps slider is live too
                if engine.step >= end:
                    break
                before, t0 = engine.step, time.perf_counter()
                result = engine.run(min(chunk, end - engine.step), stop=self._stop)
                done = engine.step - before
                if done:
                    measured = (time.perf_counter() - t0) / done
                    seconds_per_step = measured if seconds_per_step is None else 0.7 * seconds_per_step + 0.3 * measured
                    chunk = max(1, min(50, round(self.update_every_s / seconds_per_step)))
                if result.stopped not in (None, "stopped"):  # a NaN loss or out of memory: keep the last good image
                    self.image = self._resume_from = result.image
                    with self._lock:
                        self._restart = True  # the optimizer's state may hold NaN too
                    if memory.ran_out_of_memory(result.stopped):
                        self._drop_engine()
                        self._set_state("failed", result.stopped + " Kept the best image so far: lower "
                                        "the image size, then press Run to go on from it.")
                    else:
                        self._set_state("failed", result.stopped + " Press Run to go on from it.")
                    return
                self.image = engine.shown(engine.image.detach().float()).cpu().clamp(0, 1)
                self.progress = {
                    "step": engine.step - first, "steps": end - first, "total_step": engine.step,
                    "seconds_per_step": seconds_per_step or 0.0,
                    "eta_s": (end - engine.step) * (seconds_per_step or 0.0),
                    "losses": dict(engine.history[-1]) if engine.history else {},
                }
                self._notify("progress")
            stopped = self._stop.is_set()
            self._set_state("stopped" if stopped else "finished",
                            f"{'stopped' if stopped else 'finished'} at step {engine.step}; "
                            "Run goes on from this image")
        except StyleTransferError as err:  # a size that cannot fit is one of these
            self._set_state("failed", str(err))
        except Exception as err:  # a learner should see one line in the studio, not a traceback
            if memory.is_out_of_memory(err):  # while preparing the run: the session stays usable
                self._drop_engine()
                with self._lock:
                    self._restart = True
                self._set_state("failed", memory.out_of_memory_message(err, None, self.config.size_px)
                                + " Lower the image size, then press Run.")
            else:
                self._set_state("failed", f"{type(err).__name__}: {err}")

    def _drop_engine(self):
        """Let go of the engine's tensors (after running out of memory), keeping the image."""
        device = self.engine.device if self.engine is not None else None
        with self._lock:
            self.engine = None
        if device is not None:
            memory.release_memory(device)

    def largest_size_px(self):
        """The largest image size (px) whose run fits in the memory free now, with the current
        settings and images (None where the free memory cannot be told)."""
        from .device import pick_device
        from .speed import run_precision  # the engine's precision for these settings

        device = pick_device(self.config.device)
        return memory.largest_size(self.config, self.content, self.style, device=device,
                                   precision=run_precision(self.config, device))

    def _engine_for_run(self):
        with self._lock:
            restart, self._restart = self._restart, False
            self._pending = {} if restart else self._pending
        if restart or self.engine is None:
            resume, self._resume_from = self._resume_from, None
            self._drop_engine()  # the old engine's memory is free before the new one's is taken
            self._set_state("running", "preparing the network and the targets…")
            self.engine = StyleTransfer(self.content, self.style, self.config, init_image=resume)
            self.changes = []
            self.image = self.engine.shown(self.engine.image.detach().float()).cpu().clamp(0, 1)
            self._set_state("running", f"running on {self.engine.device.type}")
        return self.engine

    def _apply_pending(self, engine):
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        config = self.config
        engine.update(content_weight=config.content_weight, style_weight=config.style_weight,
                      tv_weight=config.tv_weight, learning_rate=config.learning_rate,
                      style_layer_weights=config.style_layer_weights)
        self.changes.append((engine.step, pending))

    # --- results ------------------------------------------------------------------------

    def describe(self):
        """The settings that made the current image, as a dict (what Save stores)."""
        return {
            "content": self.content_name, "style": self.style_name,
            "settings": dict(self.settings),
            "steps_done": self.engine.step if self.engine is not None else 0,
            "changes_during_run": [{"at_step": step, **change} for step, change in self.changes],
            "weights": self.base_config.weights, "content_layers": list(self.base_config.content_layers),
            "device": str(self.engine.device) if self.engine is not None else "",
        }

    def save(self, folder=None):
        """Write the current image as PNG into `folder` (default: `output_dir()`) under a free
        name, with `describe()` as JSON in the PNG's "settings" text; return the path."""
        image = self.image
        if image is None or self.engine is None:
            raise StyleTransferError("nothing to save yet: press Run first")
        folder = Path(folder) if folder is not None else output_dir()
        folder.mkdir(parents=True, exist_ok=True)
        metadata = {"Software": "neural-style-notebooks studio (helpers.studio)",
                    "settings": json.dumps(self.describe())}
        for _ in range(5):  # another save may take the free name between the check and the write
            path = free_path(folder / f"studio_{self.content_name}_{self.style_name}.png")
            try:
                return save_image(image, path, overwrite=False, metadata=metadata)
            except StyleTransferError:
                if not path.exists():
                    raise
        raise StyleTransferError(f"could not find a free file name in {folder}")

    # --- plumbing -----------------------------------------------------------------------

    def _set_state(self, state, message):
        with self._state_lock:
            self.state, self.message = state, message
        self._notify("state")

    def _notify(self, event):
        if self.on_change is not None:
            self.on_change(event)


# --- the widgets ------------------------------------------------------------------------

def png_bytes(image, max_px=None):
    """An image tensor or PIL image as PNG bytes (for an ipywidgets.Image), optionally shrunk."""
    pil = tensor_to_image(image) if isinstance(image, torch.Tensor) else image
    if max_px is not None and max(pil.size) > max_px:
        pil = pil.copy()
        pil.thumbnail((max_px, max_px))
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()


def loss_plot_png(history, width_in=4.6, height_in=3.2):
    """The loss curves of `history` as PNG bytes, drawn without pyplot (safe in a thread)."""
    fig = Figure(figsize=(width_in, height_in), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if history:
        plot_losses(history, ax=ax)
    else:
        ax.set_title("losses (weighted): press Run", fontsize=10)
        ax.set_xlabel("step")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def format_progress(progress):
    """'step 40/300 · 0.12 s/step · about 31 s left' from StudioSession.progress."""
    if not progress:
        return ""
    text = f"step {progress['step']}/{progress['steps']}"
    if progress.get("seconds_per_step"):
        eta = progress["eta_s"]
        left = f"{eta:.0f} s" if eta < 90 else f"{eta / 60:.1f} min"
        text += f" · {progress['seconds_per_step']:.2f} s/step · about {left} left"
    return text


class Studio:
    """The studio's widgets around a StudioSession. Show it by making it a cell's last value.

    size_px, steps: the sliders' starting values; max_size_px: the image-size slider's end.
    base_config: settings without a slider (e.g. StyleTransferConfig(weights="random") in tests).
    Each part carries a CSS class (nst-run, nst-stop, nst-save, nst-reset, nst-preview,
    nst-status, nst-progress, nst-slider-<setting>) so that a browser test can find it.
    """

    def __init__(self, size_px=256, steps=300, max_size_px=512, content="city", style="starry_night",
                 base_config=None, update_every_s=0.5):
        import ipywidgets as widgets  # only the studio needs ipywidgets

        self._w = widgets
        contents, styles = bundled_images("content"), bundled_images("style")
        self.session = StudioSession(
            contents[content], styles[style], {"size_px": size_px, "steps": steps},
            base_config=base_config, content_name=content, style_name=style,
            update_every_s=update_every_s, on_change=self._on_change,
        )
        self.status = widgets.HTML(value="")
        self.progress_bar = widgets.IntProgress(value=0, min=0, max=steps, description="progress")
        self.progress_text = widgets.Label(value="")
        self.preview = widgets.Image(format="png", layout=widgets.Layout(width="320px"))
        self.losses = widgets.Image(format="png", value=loss_plot_png([]), layout=widgets.Layout(width="368px"))
        # The size slider ends at what fits in the memory free now (the Run button checks again).
        fits = self.session.largest_size_px()
        self.size_cap_px = max(64, fits // 32 * 32) if fits is not None and fits < max_size_px else None
        if self.size_cap_px is not None:
            max_size_px, size_px = self.size_cap_px, min(size_px, self.size_cap_px)
            self.session.set(size_px=size_px)
        self.sliders = self._make_sliders(size_px, steps, max_size_px)
        self.buttons = {name: widgets.Button(description=label, button_style=style_, tooltip=tip)
                        for name, label, style_, tip in (
                            ("run", "▶ Run", "success", "run (or go on for) the number of steps set"),
                            ("stop", "■ Stop", "danger", "stop after the current step"),
                            ("save", "Save", "", "write the image and its settings to a new PNG"),
                            ("reset", "Reset", "warning", "stop and start again from the init"))}
        for name, button in self.buttons.items():
            button.add_class(f"nst-{name}")
            button.on_click(getattr(self, f"_on_{name}"))
        self.thumbnails = {"content": self._picker("content", contents, content),
                           "style": self._picker("style", styles, style)}
        for widget, css in ((self.status, "nst-status"), (self.preview, "nst-preview"),
                            (self.progress_bar, "nst-progress"), (self.progress_text, "nst-progress-text"),
                            (self.losses, "nst-losses")):
            widget.add_class(css)
        self.widget = self._layout()
        self._show_state()
        self._show_images()

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    # --- building -------------------------------------------------------------------------

    def _make_sliders(self, size_px, steps, max_size_px):
        w = self._w
        style = {"description_width": "110px"}
        wide = w.Layout(width="380px")

        def log(description, value, lo, hi):
            return w.FloatLogSlider(value=value, base=10, min=lo, max=hi, step=0.1, description=description,
                                    readout_format=".3g", style=style, layout=wide, continuous_update=False)

        sliders = {
            "content_weight": log("content weight", DEFAULT_SETTINGS["content_weight"], -2, 3),
            "style_weight": log("style weight", DEFAULT_SETTINGS["style_weight"], -1, 4),
            "tv_weight": log("TV weight", DEFAULT_SETTINGS["tv_weight"], -3, 2),
            "learning_rate": log("learning rate", DEFAULT_SETTINGS["learning_rate"], -3, 1),
            "size_px": w.IntSlider(value=size_px, min=64, max=max(max_size_px, size_px), step=32,
                                   description="image size (px)", style=style, layout=wide, continuous_update=False),
            "steps": w.IntSlider(value=steps, min=10, max=max(2000, steps), step=10, description="steps per Run",
                                 style=style, layout=wide, continuous_update=False),
            "optimizer": w.ToggleButtons(options=["adam", "lbfgs"], value="adam", description="optimizer", style=style),
            "init": w.ToggleButtons(options=["content", "noise"], value="content", description="start from", style=style),
            "pooling": w.ToggleButtons(options=["max", "avg"], value="max", description="pooling", style=style),
            "preserve_color": w.ToggleButtons(options=["none", "luminance", "histogram"], value="none",
                                              description="keep colours", style=style),
            "style_scale": w.FloatSlider(value=1.0, min=0.25, max=2.0, step=0.05, description="style scale",
                                         readout_format=".2f", style=style, layout=wide, continuous_update=False),
        }
        for layer in STYLE_LAYERS:
            sliders[layer] = w.FloatSlider(value=1.0, min=0.0, max=5.0, step=0.1, description=f"{layer} ×",
                                           readout_format=".1f", style={"description_width": "70px"},
                                           layout=w.Layout(width="300px"), continuous_update=False)
        for name, slider in sliders.items():
            slider.add_class(f"nst-slider-{name.replace('_', '-')}")
            slider.observe(lambda change, name=name: self._on_slider(name, change["new"]), names="value")
        return sliders

    def _picker(self, kind, images, selected):
        """A row of thumbnails with a button each, and an upload button for your own picture."""
        w = self._w
        buttons, cells = {}, []
        for name, path in images.items():
            try:
                thumb = png_bytes(load_image(path, 96))
            except StyleTransferError:
                continue
            button = w.Button(description=name.replace("_", " "), layout=w.Layout(width="104px"),
                              button_style="info" if name == selected else "")
            button.on_click(lambda _, kind=kind, name=name, path=path: self._pick(kind, name, path))
            buttons[name] = button
            cells.append(w.VBox([w.Image(value=thumb, format="png", layout=w.Layout(width="96px")), button]))
        upload = w.FileUpload(accept="image/*", multiple=False, description="upload your own",
                              layout=w.Layout(width="180px"))
        upload.add_class(f"nst-upload-{kind}")
        upload.observe(lambda change, kind=kind: self._on_upload(kind, change["new"]), names="value")
        label = w.HTML(value=f"<b>{'Content (the photo)' if kind == 'content' else 'Style (the painting)'}</b>")
        return {"buttons": buttons, "upload": upload,
                "box": w.VBox([label, w.HBox(cells + [w.VBox([upload])])])}

    def _layout(self):
        w = self._w
        main = w.VBox([self.sliders[k] for k in ("content_weight", "style_weight", "tv_weight", "learning_rate",
                                                  "size_px", "steps", "style_scale", "optimizer", "init",
                                                  "pooling", "preserve_color")])
        layers = w.VBox([w.HTML(value="<b>style layers</b> (1 = the paper's equal share)")]
                        + [self.sliders[layer] for layer in STYLE_LAYERS])
        box = w.VBox([
            self.thumbnails["content"]["box"], self.thumbnails["style"]["box"],
            w.HBox([main, layers]),
            w.HBox(list(self.buttons.values())),
            w.HBox([self.progress_bar, self.progress_text]),
            self.status,
            w.HBox([self.preview, self.losses]),
        ])
        box.add_class("nst-studio")
        return box

    # --- events (from the kernel's thread: clicks and sliders) --------------------------------

    def _say(self, text, error=False):
        import html
        colour = "#b00020" if error else "#444"
        self.status.value = f"<span style='color:{colour}'>{html.escape(str(text))}</span>"

    def _guard(self, action, *args):
        """Run a button's action; any problem becomes one line in the studio, never a traceback."""
        try:
            return action(*args)
        except StyleTransferError as err:
            self._say(err, error=True)
        except Exception as err:  # noqa: BLE001 - shown to the learner instead of a traceback
            self._say(f"{type(err).__name__}: {err}", error=True)

    def _on_slider(self, name, value):
        def apply():
            if name == "optimizer":
                self.sliders["learning_rate"].value = DEFAULT_LEARNING_RATES[value]
            when = self.session.set(**{name: value})
            label = self.sliders[name].description.rstrip(" ×")
            if when == "live":
                tail = " from the next steps" if self.session.running else " (Run goes on from the current image)"
                self._say(f"{label} = {value:.3g}{tail}" if isinstance(value, float) else f"{label} = {value}{tail}")
            elif when == "next run":
                self._say(f"{label} = {value}: the next Run starts again from the "
                          f"{self.session.settings['init']}")
        self._guard(apply)

    def _pick(self, kind, name, path):
        self._load(kind, name, path)

    def _on_upload(self, kind, value):
        files = self._guard(uploaded_files, value) or []
        if files:
            name, data = files[-1]
            upload = io.BytesIO(data)
            upload.name = name  # so that an error message names the file
            self._load(kind, name, upload)

    def _load(self, kind, name, source):
        def apply():
            if self.session.running:
                raise StyleTransferError("stop the run first, then pick another image")
            (self.session.set_content if kind == "content" else self.session.set_style)(source, name)
            for key, button in self.thumbnails[kind]["buttons"].items():
                button.button_style = "info" if key == name else ""
            self._say(f"{kind}: {name}; the next Run starts again from the {self.session.settings['init']}")
        self._guard(apply)

    def _on_run(self, _=None):
        self._guard(self.session.start)

    def _on_stop(self, _=None):
        self._guard(self.session.stop)

    def _on_save(self, _=None):
        path = self._guard(self.session.save)
        if path is not None:
            self._say(f"saved {path} (the settings are in its PNG metadata)")

    def _on_reset(self, _=None):
        self._guard(self.session.reset)
        if self.session.state == "ready":
            self.progress_bar.value = 0
            self.progress_text.value = ""

    # --- redrawing (also from the run's thread: only widget values, never `with out:`) -------

    def _on_change(self, event):
        try:
            if event == "state":
                self._show_state()
            elif event == "progress":
                self._show_progress()
            elif event in ("images", "reset"):
                self._show_images()
        except Exception as err:  # noqa: BLE001 - never let a drawing problem kill the run's thread
            self._say(f"could not redraw the studio: {type(err).__name__}: {err}", error=True)

    def _show_state(self):
        s = self.session
        self.buttons["run"].disabled = s.running
        self.buttons["stop"].disabled = not s.running
        if s.state == "ready" and not s.message:
            self._say("pick images, set the sliders, press Run")
        else:
            text = s.message if s.message.startswith(s.state) else f"{s.state}: {s.message}".rstrip(": ")
            self._say(text, error=s.state == "failed")
        if not s.running and s.image is not None:
            self._show_progress()

    def _show_progress(self):
        s = self.session
        if s.image is not None:
            self.preview.value = png_bytes(s.image)
        p = s.progress
        if p:
            self.progress_bar.max = max(1, p["steps"])
            self.progress_bar.value = min(p["step"], p["steps"])
            self.progress_text.value = format_progress(p)
        self.losses.value = loss_plot_png(s.history)

    def _show_images(self):
        s = self.session
        image = s.image if s.image is not None else load_image(s.content, int(s.settings["size_px"]))
        self.preview.value = png_bytes(image)
        if s.image is None:
            self.losses.value = loss_plot_png([])
