"""Real-time style transfer: a network trained to do in one pass what the optimization does in
hundreds of steps.

Johnson, Alahi & Fei-Fei, *Perceptual Losses for Real-Time Style Transfer and
Super-Resolution* (ECCV 2016): instead of optimizing each picture, train an image
transformation network f_W once per painting, so that for any photo x the picture y = f_W(x)
has a low loss

.. math:: \\mathcal{L}(y, x) = \\alpha\\,\\mathcal{L}_{content}(y, x) + \\beta\\,\\mathcal{L}_{style}(y, a)
          + \\gamma\\,\\mathcal{L}_{TV}(y)

with the same VGG-19 content, Gram and TV losses as the optimization (`helpers.losses`),
averaged over a folder of photos. Training costs minutes to hours; stylizing then costs one
forward pass.

- `TransformNet`     the network: strided convolutions down, residual blocks, resize-convolutions up
- `PhotoCrops`       random crops and flips from a folder of photos
- `PerceptualLoss`   the optimization's loss for a batch of photos and their stylized versions
- `Trainer`          training with checkpoints that resume, `save_model` / `load_model`
- `apply_model`      one photo through the network
- `pan_frames`, `flicker`  a video whose motion is known, and how much its stylized frames flicker
"""

import os
import random
import time
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from . import losses, speed
from .config import TrainingConfig
from .device import pick_device
from .errors import StyleTransferError
from .images import check_output_path, load_image, write_atomically
from .network import cached_vgg19
from .progress import Progress

MODEL_FORMAT = "nst-tutorial/transform-net"
MODEL_VERSION = 1
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


# --- the network ---------------------------------------------------------------------------

def norm_layer(kind, channels):
    """Instance normalization (Ulyanov et al.): each image's channels are normalized by that
    image's own mean and variance over positions,

    .. math:: y_{nchw} = \\gamma_c \\frac{x_{nchw} - \\mu_{nc}}{\\sqrt{\\sigma^2_{nc} + \\epsilon}} + \\beta_c

    so a picture's contrast never depends on the other pictures in the batch, in training or
    after. "batch" (batch normalization, Johnson et al.'s first choice) uses statistics over the
    whole batch while training and running averages afterwards.
    """
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise StyleTransferError(f"unknown normalization {kind!r}: choose instance or batch")


class ConvBlock(nn.Sequential):
    """Reflection padding, a convolution, normalization and ReLU (the last two optional)."""

    def __init__(self, c_in, c_out, kernel, stride=1, norm="instance", relu=True):
        layers = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride)]
        if norm is not None:
            layers.append(norm_layer(norm, c_out))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """x + F(x), F two 3×3 convolutions: the block learns a change to its input, which keeps a
    deep network easy to train and the photo's layout easy to pass through (He et al. 2016)."""

    def __init__(self, channels, norm="instance"):
        super().__init__()
        self.body = nn.Sequential(ConvBlock(channels, channels, 3, norm=norm),
                                  ConvBlock(channels, channels, 3, norm=norm, relu=False))

    def forward(self, x):
        return x + self.body(x)


class UpsampleConv(nn.Sequential):
    """Twice the size by nearest-neighbour resizing, then a convolution: a "resize-convolution".

    A transposed convolution of stride 2 with a 3×3 kernel covers some output pixels with two
    kernel taps and their neighbours with one, which prints a checkerboard into the picture
    (Odena, Dumoulin & Olah 2016); resizing first gives every pixel the same number of taps.
    """

    def __init__(self, c_in, c_out, norm="instance"):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvBlock(c_in, c_out, 3, norm=norm))


class TransformNet(nn.Module):
    """Johnson et al.'s image transformation network, with instance normalization and
    resize-convolutions: RGB in [0, 1] in, RGB (about [0, 1]) out, the same size.

    9×9 conv (width) → 3×3 stride 2 (2·width) → 3×3 stride 2 (4·width) → `residual_blocks`
    residual blocks at a quarter of the size → two resize-convolutions back up → 9×9 conv to
    RGB. Any height and width work: the input is padded (by reflection) to a multiple of 4
    and the output cropped back.

    skip=True adds the photo to the output, y = x + f(x), with the last convolution starting at
    zero: the untrained network returns the photo, as the optimization starts from it, and
    learns only the change (not in Johnson et al.). Measured on one CPU core after 300 steps
    of 128 px crops (notes/issue22.md, style × 30 and × 100): the held-out photos' content
    distance 0.09-0.21, but their style 17.5-26.7 against 14.1-15.0 without it at style × 3:
    a tinted photo rather than a painting. So it is off by default.
    """

    def __init__(self, width=32, residual_blocks=5, norm="instance", skip=False):
        super().__init__()
        self.settings = {"width": width, "residual_blocks": residual_blocks, "norm": norm, "skip": skip}
        self.skip = skip
        w = width
        self.down = nn.Sequential(ConvBlock(3, w, 9, norm=norm), ConvBlock(w, 2 * w, 3, 2, norm=norm),
                                  ConvBlock(2 * w, 4 * w, 3, 2, norm=norm))
        self.residual = nn.Sequential(*[ResidualBlock(4 * w, norm) for _ in range(residual_blocks)])
        self.up = nn.Sequential(UpsampleConv(4 * w, 2 * w, norm), UpsampleConv(2 * w, w, norm),
                                ConvBlock(w, 3, 9, norm=None, relu=False))
        if skip:
            last = self.up[-1][1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, x):
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % 4, -w % 4
        padded = x
        if pad_h or pad_w:
            padded = nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > 4 else "replicate")
        y = self.up(self.residual(self.down(padded)))[..., :h, :w]
        return x + y if self.skip else y


# --- the training data ---------------------------------------------------------------------

def photo_files(folder, exclude=()):
    """The photos in `folder` (and its subfolders), sorted, without the files in `exclude`.

    A file with the same content as one in `exclude` is left out too: the painting must never
    be one of the training photos, whatever its name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise StyleTransferError(f"photo folder {folder} does not exist: give a folder of photos")
    excluded = {Path(p).resolve() for p in exclude}
    sizes = {p.stat().st_size: p for p in excluded if p.is_file()}
    files = []
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() not in PHOTO_SUFFIXES or not p.is_file() or p.resolve() in excluded:
            continue
        twin = sizes.get(p.stat().st_size)
        if twin is not None and twin.read_bytes() == p.read_bytes():
            continue
        files.append(p)
    if not files:
        raise StyleTransferError(f"no photos (.jpg, .png, ...) in {folder}: add some or choose another folder")
    return files


class PhotoCrops:
    """Batches of random square crops of random photos, each flipped left-right half the time.

    Each photo is resized once so that its long edge is `photo_px` (the size the network is
    meant for: a crop is then a window of a photo at that size), or more where its short edge
    would be shorter than a crop, and kept in memory as bytes. Photos that cannot be read are
    skipped (`skipped`); a folder where none can is an error.
    """

    def __init__(self, files, photo_px, crop_px, batch_size, seed=0):
        self.crop_px, self.batch_size = crop_px, batch_size
        self.random = random.Random(seed)
        self.photos, self.skipped = [], []
        for f in files:
            try:
                with Image.open(f) as pil:  # reads the header only
                    short, long = sorted(pil.size)
                # a wide photo: enlarged until its short edge holds a crop
                image = load_image(f, max(photo_px, -(-crop_px * long // max(1, short))))
            except (StyleTransferError, OSError):
                self.skipped.append(f)
                continue
            self.photos.append((image[0] * 255).round().to(torch.uint8))
        if not self.photos:
            raise StyleTransferError(f"none of the {len(files)} photos could be read: "
                                     f"{', '.join(str(f) for f in self.skipped[:3])}")

    def __len__(self):
        return len(self.photos)

    def crop(self):
        photo = self.random.choice(self.photos)
        _, h, w = photo.shape
        top, left = self.random.randint(0, h - self.crop_px), self.random.randint(0, w - self.crop_px)
        crop = photo[:, top:top + self.crop_px, left:left + self.crop_px]
        return crop.flip(-1) if self.random.random() < 0.5 else crop

    def batch(self):
        """(batch_size, 3, crop_px, crop_px), float32 in [0, 1]."""
        return torch.stack([self.crop() for _ in range(self.batch_size)]).float() / 255

    def state(self):
        """Where the crops' random numbers stand (ints in tuples: a checkpoint loads it with weights_only)."""
        return {"random": self.random.getstate()}

    def set_state(self, state):
        self.random.setstate(state["random"])


# --- the loss --------------------------------------------------------------------------------

class PerceptualLoss:
    """The optimization's loss (`losses.StyleTransferLoss`, which `StyleTransfer.losses` calls
    too) for a batch: photos x, their stylized versions y, one painting.

    content: mean over content layers of mean((F(y) − F(x))²) / mean(F(x)²), each batch's photos
    its own targets; style: Σ_l w_l · mean((G_l(y) − A_l)²) / mean(A_l²), A_l the painting's Gram
    matrix at `style_px`; tv: `total_variation_loss(y)`. Each term times its weight, as in the
    optimization, so the weights mean the same thing in both. What this class adds is the loss
    network and its precision, and the painting's Gram matrices at the training's size.

    dtype: the loss network's precision, as the trainer resolved it (`speed.run_precision`;
    None: float32).
    """

    def __init__(self, style, config, device, model=None, *, dtype):
        self.config = config
        self.device = device
        self.model = model if model is not None else cached_vgg19(config.weights, "max", device)
        self.dtype = dtype
        style_image = load_image(style, config.style_px).to(device)
        with torch.no_grad():
            feats = self.features(style_image, config.style_layers)
            grams = {n: speed.fast_gram_matrix(feats[n]) for n in config.style_layers}
        self.objective = losses.StyleTransferLoss(grams, gram=speed.fast_gram_matrix)
        self.layers = list(dict.fromkeys(list(config.content_layers) + list(config.style_layers)))

    def features(self, image, layers):
        return speed.network_features(self.model, image, layers, self.dtype)

    def __call__(self, photos, stylized, config=None):
        """{"content", "style", "tv", "total"}: the weighted terms, averaged over the batch;
        `config`: other weights for this call (the warm-up's), the same layers."""
        config = config or self.config
        with torch.no_grad():
            targets = self.features(photos, config.content_layers)
        return self.objective(self.features(stylized, self.layers), stylized, config, content_targets=targets)


# --- training ----------------------------------------------------------------------------------

class Trainer:
    """Trains a `TransformNet` for one painting on a folder of photos, resumably.

        trainer = Trainer("painting.jpg", "photos/", TrainingConfig(steps=1000), checkpoint="run.ckpt")
        trainer.run(callback=...)          # resumes from run.ckpt if it is there
        save_model(trainer.net, "painting.pt", trainer.settings())

    A checkpoint (network, optimizer, step, random state, settings, loss history) is written
    every `config.checkpoint_every` steps and when the run ends or is stopped, atomically:
    a file is written beside it and moved into place, so an interruption at any moment leaves
    the previous checkpoint whole.
    """

    def __init__(self, style, photos, config=None, *, checkpoint=None, exclude=(), model=None):
        self.config = (config or TrainingConfig()).validate()
        cfg = self.config
        torch.manual_seed(cfg.seed)
        self.device = pick_device(cfg.device)
        self.style = style
        files = photos if isinstance(photos, (list, tuple)) else photo_files(
            photos, exclude=[style, *exclude] if isinstance(style, (str, os.PathLike)) else exclude)
        self.data = PhotoCrops(files, cfg.photo_px, cfg.crop_px, cfg.batch_size, cfg.seed)
        model = model if model is not None else cached_vgg19(cfg.weights, "max", self.device)
        # The precision is decided here, once (None: float32), for the loss network and for the
        # network being trained (`train_step`).
        self.dtype = speed.run_precision(cfg, self.device, model)
        self.loss = PerceptualLoss(style, cfg, self.device, model, dtype=self.dtype)
        self.net = TransformNet(cfg.width, cfg.residual_blocks, cfg.norm, cfg.skip).to(self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.learning_rate)
        self.step, self.history, self.seconds = 0, [], 0.0
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        if self.checkpoint is not None and self.checkpoint.exists():
            self._resume(self.checkpoint)

    def settings(self):
        """What made this network, stored with it: the training settings and the painting."""
        style = self.style if isinstance(self.style, (str, os.PathLike)) else "(an image)"
        return {**self.config.as_dict(), "style": str(style), "steps_done": self.step, "photos": len(self.data),
                "seconds": round(self.seconds, 1)}

    def train_step(self):
        """One step: a batch of crops through the network, the loss, backward, Adam."""
        photos = self.data.batch().to(self.device)
        self.net.train()
        # The loss network's precision for the transformation network too (float32 weights,
        # autocast): where bfloat16 halves VGG-19's step, it halves this network's as well.
        dtype = self.dtype
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            stylized = self.net(photos)
        cfg = self.config
        weights = cfg.replace(style_weight=cfg.style_weight_at(self.step)) if cfg.warmup_steps else cfg
        terms = self.loss(photos, stylized.float(), weights)
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        self.optimizer.step()
        return {k: v.item() for k, v in terms.items()}

    def run(self, steps=None, callback=None, stop=None, preview=None):
        """Train until `config.steps` steps are done (or `steps` more); return the history.

        callback(progress) every `config.report_every` steps, with `progress.image` the network's
        picture of `preview` (a photo tensor held out of training) when one is given.
        stop: a threading.Event (or a function returning True) ends the run early; so does
        Ctrl-C. Either way a checkpoint is written first.
        """
        cfg = self.config
        end = cfg.steps if steps is None else self.step + steps
        should_stop = getattr(stop, "is_set", stop) or (lambda: False)
        start, first = time.perf_counter(), self.step
        self.stopped = None
        try:
            while self.step < end:
                if should_stop():
                    self.stopped = "stopped"
                    break
                self.history.append({"step": self.step + 1, **self.train_step()})
                self.step += 1
                if self.checkpoint is not None and self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                if callback is not None and (self.step % cfg.report_every == 0 or self.step == end):
                    elapsed = time.perf_counter() - start
                    image = self.stylize(preview) if preview is not None else None
                    callback(Progress(self.step, end, dict(self.history[-1]), image, elapsed,
                                      elapsed / max(1, self.step - first)))
        except KeyboardInterrupt:
            self.stopped = "interrupted"
        self.seconds += time.perf_counter() - start
        if self.checkpoint is not None:
            self.save_checkpoint()
        return self.history

    @torch.no_grad()
    def stylize(self, photo):
        """The network's picture of `photo` (a (1, 3, H, W) tensor in [0, 1]), on the CPU."""
        self.net.eval()
        out = self.net(photo.to(self.device)).clamp(0, 1).cpu()
        self.net.train()
        return out

    def save_checkpoint(self, path=None):
        path = Path(path or self.checkpoint)
        state = {"format": MODEL_FORMAT + "/checkpoint", "version": MODEL_VERSION,
                 "settings": self.settings(), "net": self.net.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "step": self.step, "seconds": self.seconds,
                 "history": {k: [h[k] for h in self.history] for k in ("step", "content", "style", "tv", "total")},
                 "torch_rng": torch.get_rng_state(), "data": self.data.state()}
        write_atomically(path, lambda f: torch.save(state, f))
        return path

    def _resume(self, path):
        state = _load(path, MODEL_FORMAT + "/checkpoint", "a training checkpoint")
        ours = {k: v for k, v in self.config.as_dict().items() if k not in ("steps", "device", "precision",
                                                                            "report_every", "checkpoint_every")}
        theirs = state["settings"]
        changed = sorted(k for k in ours if k in theirs and _plain(theirs[k]) != _plain(ours[k]))
        if changed:
            raise StyleTransferError(
                f"checkpoint {path} was made with other settings ({', '.join(changed)}): "
                "use the same settings to resume, or another checkpoint file to start over")
        try:
            self.net.load_state_dict(state["net"])
            self.optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            self.data.set_state(state["data"])
        except (RuntimeError, ValueError, TypeError, KeyError) as err:
            raise StyleTransferError(f"checkpoint {path} does not fit this network: {_first_line(err)}") from None
        self.step, self.seconds = int(state["step"]), float(state.get("seconds", 0.0))
        h = state["history"]
        self.history = [dict(zip(h, values)) for values in zip(*h.values())]


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _first_line(err):
    return str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__


# --- the model file ------------------------------------------------------------------------------

def save_model(net, path, settings=None, overwrite=False):
    """Write the trained network and the settings that made it to `path`, atomically.

    The file holds only tensors, numbers, strings, lists and dicts, so it loads with
    `torch.load(path, weights_only=True)`: loading a model file never runs code from it.
    """
    path = Path(path)
    check_output_path(path, overwrite)
    state = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "architecture": dict(net.settings),
             "settings": dict(settings or {}), "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}
    return write_atomically(path, lambda f: torch.save(state, f))


def load_model(path, device="cpu"):
    """(TransformNet in eval mode, settings) from a file written by `save_model`.

    A missing file, a file that is not a model (a picture, a checkpoint of something else, a
    damaged download) or one whose weights do not fit is one clear error.
    """
    state = _load(path, MODEL_FORMAT, "a style model")
    arch = state.get("architecture", {})
    try:
        net = TransformNet(int(arch["width"]), int(arch["residual_blocks"]), str(arch["norm"]),
                           bool(arch.get("skip", False)))
        net.load_state_dict(state["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, StyleTransferError) as err:
        raise StyleTransferError(f"{path} is a damaged style model: {_first_line(err)}") from None
    return net.to(pick_device(device)).eval(), dict(state.get("settings", {}))


def _load(path, expected_format, what):
    path = Path(path)
    if not path.is_file():
        raise StyleTransferError(f"{path} does not exist: give the path of {what} file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, zip errors, truncated files: all mean "not a model file"
        raise StyleTransferError(
            f"{path} is not {what} file (it could not be read: {_first_line(err)[:120]})") from None
    if not isinstance(state, dict) or state.get("format") != expected_format:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise StyleTransferError(f"{path} is not {what} file (it holds {found or 'something else'}): "
                                 "train one with python -m helpers train")
    if state.get("version") != MODEL_VERSION:
        raise StyleTransferError(f"{path} was written by another version of the helpers "
                                 f"(format version {state.get('version')}, this one reads {MODEL_VERSION})")
    return state


#: One pass's peak memory per pixel and per channel of the network's width (float32), measured with
#: `python -m helpers apply` on a CPU, width 32, peak resident memory less PyTorch's own ~0.9 GB:
#: 1.6 GB at 1000 × 750 px, 3.7 GB at 2000 × 1500, 12.6 GB at 4000 × 3000 (0.94–0.98 kB a pixel).
#: The full-size layers hold about eight pictures of `width` channels at once.
PASS_BYTES_PER_PIXEL_CHANNEL = 31


def check_pass_fits(net, photo, size_px=None, *, available=None):
    """Raise a one-line StyleTransferError if one pass of `net` over `photo` (its long edge resized
    to `size_px`, if given) would need more memory than the device has free, naming the largest
    --size that fits: a phone's 12-megapixel photo needs about 12 GB, which would otherwise end in
    the system killing the process. `available` replaces the measured free memory (tests).
    Skipped where the free memory cannot be told, or with NST_SKIP_MEMORY_CHECK=1."""
    from .memory import SKIP_CHECK_ENV, available_bytes, human_bytes, planned_shape

    shape = planned_shape(photo, size_px)
    if shape is None or os.environ.get(SKIP_CHECK_ENV) == "1":
        return
    device = next(net.parameters()).device
    available = available_bytes(device) if available is None else available
    per_pixel = PASS_BYTES_PER_PIXEL_CHANNEL * net.settings["width"]
    h, w = shape
    if available is None or per_pixel * h * w <= available:
        return
    long_edge = (available / per_pixel * max(h, w) / min(h, w)) ** 0.5
    fits = int(long_edge) // 64 * 64
    advice = f"pass --size {fits} or less" if fits >= 64 else "free some memory or use a machine with more"
    where = "this GPU has" if device.type == "cuda" else "this machine has"
    name = Path(photo).name if isinstance(photo, (str, os.PathLike)) else "the photo"
    raise StyleTransferError(f"{name} at {w}×{h} px needs about {human_bytes(per_pixel * h * w)} for one pass "
                             f"and {where} {human_bytes(available)} free: {advice}")


@torch.no_grad()
def apply_model(net, photo, size_px=None):
    """Stylize one photo in one forward pass: a (1, 3, H, W) tensor in [0, 1], on the CPU.

    `photo` is anything `load_image` takes; `size_px` resizes its long edge first.
    """
    device = next(net.parameters()).device
    image = load_image(photo, size_px).to(device)
    return net(image).clamp(0, 1).cpu()


# --- frames of a video ---------------------------------------------------------------------------

def pan_frames(photo, size_px, frames, shift_px):
    """`frames` windows of `size_px` × `size_px`·¾ sliding right across `photo` by `shift_px` per
    frame: a slow camera pan, the simplest video whose true motion is known exactly."""
    width = size_px + shift_px * (frames - 1)
    image = load_image(photo)
    height = round(size_px * 3 / 4)
    scale = max(width / image.shape[-1], height / image.shape[-2])
    image = nn.functional.interpolate(image, scale_factor=scale, mode="bilinear", antialias=True,
                                      align_corners=False).clamp(0, 1)
    top = (image.shape[-2] - height) // 2
    return [image[..., top:top + height, t * shift_px:t * shift_px + size_px].contiguous() for t in range(frames)]


def flicker(frames, shift_px):
    r"""How much a pan's frames change beyond the camera's motion, in 0..255 levels:

    .. math:: \frac{255}{T-1} \sum_{t} \text{mean} \left| F_{t+1}[:, :W-s] - F_t[:, s:] \right|

    each frame compared with the next one moved back by the pan's shift s, on the part both see.
    The photo's own frames score 0: all of a stylized pan's score is flicker.
    """
    if len(frames) < 2:
        raise StyleTransferError("flicker needs at least two frames")
    s = shift_px
    total = sum((b[..., :, : b.shape[-1] - s] - a[..., :, s:]).abs().mean() for a, b in zip(frames, frames[1:]))
    return 255 * float(total) / (len(frames) - 1)
