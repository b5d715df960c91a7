"""Loading, converting and saving images. Every image tensor here is RGB in [0, 1].

An image tensor has shape (1, 3, H, W) and dtype float32, the layout VGG-19 eats.
"""

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from .errors import StyleTransferError

# Four 2x2 poolings sit in front of relu5_1, and its 3x3 convolutions want a few pixels
# more: below this the deepest style layer has nothing left to describe.
MIN_SIDE_PX = 32

SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}


def load_image(source, size_px=None):
    """Load a picture as an RGB tensor in [0, 1] of shape (1, 3, H, W).

    `source` may be a path, a file-like object or bytes (e.g. from an upload widget),
    a PIL image, a NumPy array (H×W or H×W×C; uint8, uint16 or float in [0, 1]) or a
    tensor. The EXIF orientation is applied; grayscale, palette, CMYK and 16-bit images
    become RGB; transparency is composited on white. With `size_px`, the image is resized
    so that its long edge is `size_px`, keeping the aspect ratio. Large JPEGs are decoded
    at reduced scale first, so a huge photo never sits in memory at full size.
    """
    if size_px is not None:
        check_size(size_px)
    name = _describe(source)
    pil = _open(source, name, size_px)
    _check_not_tiny(pil, name)
    if size_px is not None:
        pil = resize_long_edge(pil, size_px)
        _check_not_tiny(pil, f"{name} resized to {size_px} px")
    return image_to_tensor(pil)


def check_size(size_px, what="size"):
    """Raise a clear error unless `size_px` is a whole number the network can take."""
    if isinstance(size_px, bool) or not isinstance(size_px, (int, np.integer)):
        raise StyleTransferError(f"{what} must be a whole number of pixels, got {size_px!r}")
    if size_px < MIN_SIDE_PX:
        raise StyleTransferError(
            f"{what} {size_px} px is too small: VGG-19 needs at least {MIN_SIDE_PX} px"
        )
    return int(size_px)


def resize_long_edge(pil, size_px):
    """Resize a PIL image so that its longer side is `size_px`, keeping the aspect ratio."""
    w, h = pil.size
    scale = size_px / max(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    if new == (w, h):
        return pil
    return pil.resize(new, Image.LANCZOS)


def image_to_tensor(pil):
    """A PIL RGB image to a float32 tensor of shape (1, 3, H, W) in [0, 1]."""
    array = np.asarray(pil.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_image(tensor):
    """An image tensor ((1, 3, H, W) or (3, H, W), RGB in [0, 1]) to a PIL image."""
    t = tensor.detach()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise StyleTransferError(f"expected one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise StyleTransferError(f"expected an RGB image tensor (3, H, W), got shape {tuple(t.shape)}")
    array = (t.float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")


def save_image(image, path, overwrite=False, metadata=None):
    """Write an image tensor or PIL image to `path`, atomically; return the path.

    The picture is written to a temporary file beside `path` and moved into place, so
    an interrupted save never leaves half a file. An existing file is kept unless
    `overwrite` is true. `metadata` (a dict of strings) is stored in PNG text chunks,
    e.g. the settings that made the picture.
    """
    path = Path(path)
    fmt, folder = check_image_path(path, overwrite)
    pil = image if isinstance(image, Image.Image) else tensor_to_image(image)
    options = {}
    if fmt == "PNG" and metadata:
        info = PngImagePlugin.PngInfo()
        for key, value in metadata.items():
            info.add_text(str(key), str(value))
        options["pnginfo"] = info
    if fmt == "JPEG":
        options["quality"] = 95
    rgb = pil.convert("RGB")
    return write_atomically(path, lambda f: rgb.save(f, format=fmt, **options), folder)


def write_atomically(path, write, folder=None):
    """Call `write(file)` on a temporary file beside `path`, then move it into place.

    An interrupted or failed write never leaves half a file, and never touches an
    existing `path`. Returns `path`.
    """
    folder = folder if folder is not None else (path.parent if str(path.parent) else Path("."))
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a saved picture is an ordinary file
        os.replace(tmp, path)
    except OSError as err:
        raise StyleTransferError(f"could not write {path}: {err.strerror or err}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def check_image_path(path, overwrite=False):
    """Raise a clear error unless a picture can be saved at `path` (a known file type, a
    folder that exists, no file in the way); return (PIL format name, folder)."""
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise StyleTransferError(
            f"cannot save {path}: unknown file type {path.suffix!r}; use one of "
            + ", ".join(sorted(SAVE_FORMATS))
        )
    return fmt, check_output_path(path, overwrite)


def check_output_path(path, overwrite=False):
    """Raise a clear error unless a file can be written at `path`; return its folder."""
    path = Path(path)
    if path.is_dir():
        raise StyleTransferError(f"cannot save to {path}: it is a folder; give a file name")
    if path.exists() and not overwrite:
        raise StyleTransferError(f"{path} already exists: choose another name or pass --overwrite")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise StyleTransferError(f"cannot save {path}: folder {folder} does not exist")
    return folder


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def free_path(path):
    """`path` if nothing is there, else the first of `name-1.ext`, `name-2.ext`, ... that is free."""
    path = Path(path)
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


# --- the images that ship with the tutorial ---------------------------------------

def images_dir():
    """The repository's `images/` folder (found beside the package, or from the working directory)."""
    here = Path(__file__).resolve().parent
    candidates = [os.environ.get("NST_IMAGES"), here.parent / "images",
                  Path.cwd() / "images", Path.cwd().parent / "images"]
    for c in candidates:
        if c and (Path(c) / "content").is_dir() and (Path(c) / "style").is_dir():
            return Path(c)
    raise StyleTransferError(
        "cannot find the bundled images/ folder: run from the repository, or set NST_IMAGES to it"
    )


def bundled_images(kind):
    """{name: path} of the bundled "content" or "style" images, sorted by name."""
    if kind not in ("content", "style"):
        raise StyleTransferError(f"kind must be 'content' or 'style', got {kind!r}")
    folder = images_dir() / kind
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".jpg", ".png")}


# --- the careful part: turning anything a user has into an RGB picture --------------

def _describe(source):
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    name = getattr(source, "name", None)
    if isinstance(name, str):
        return name
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "the uploaded image"
    return f"the {type(source).__name__} image"


def _open(source, name, size_px):
    if isinstance(source, Image.Image):
        return _to_rgb(source, name)
    if isinstance(source, torch.Tensor):
        return _from_tensor(source, name)
    if isinstance(source, np.ndarray):
        return _from_array(source, name)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise StyleTransferError(f"{path}: no such file; check the path")
        if path.is_dir():
            raise StyleTransferError(f"{path} is a folder, not an image file")
        if path.stat().st_size == 0:
            raise StyleTransferError(f"{path} is empty (0 bytes); choose another image")
        opener = lambda: open(path, "rb")  # noqa: E731
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise StyleTransferError(f"{name} is empty (0 bytes); choose another image")
        data = bytes(source)
        opener = lambda: io.BytesIO(data)  # noqa: E731
    elif hasattr(source, "read"):
        data = source.read()
        if not data:
            raise StyleTransferError(f"{name} is empty (0 bytes); choose another image")
        opener = lambda: io.BytesIO(data)  # noqa: E731
    else:
        raise StyleTransferError(
            f"cannot read an image from a {type(source).__name__}: give a path, a file, "
            "bytes, a PIL image, an array or a tensor"
        )
    try:
        with opener() as f:
            pil = Image.open(f)
            if size_px is not None and pil.format == "JPEG":
                pil.draft("RGB", (size_px, size_px))  # decode at 1/2, 1/4 or 1/8 scale
            pil.load()
            return _to_rgb(pil, name)
    except UnidentifiedImageError:
        raise StyleTransferError(
            f"{name} is not an image PIL can read (unsupported format or not a picture); "
            "use a JPEG or PNG"
        ) from None
    except Image.DecompressionBombError:
        raise StyleTransferError(
            f"{name} has too many pixels to open safely; shrink it first"
        ) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise StyleTransferError(
            f"{name} is damaged or truncated and cannot be decoded ({err}); re-export or re-download it"
        ) from None


def _to_rgb(pil, name):
    pil = ImageOps.exif_transpose(pil)
    if pil.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(pil, dtype=np.float32)
        top = 65535.0 if pil.mode != "F" else max(1.0, float(array.max()))
        array = np.clip(array / top * 255.0, 0, 255).astype(np.uint8)
        pil = Image.fromarray(array, "L")
    if pil.mode == "P":
        pil = pil.convert("RGBA")
    if pil.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = pil.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        pil = Image.alpha_composite(white, rgba)
    return pil.convert("RGB")


def _from_array(array, name):
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)  # channels first -> last
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise StyleTransferError(f"{name} has shape {a.shape}: expected H×W, H×W×3 or H×W×4")
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = (a.astype(np.float32) / 65535.0 * 255.0).round().astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise StyleTransferError(f"{name} contains NaN or infinite values")
        a = (np.clip(a, 0, 1) * 255.0).round().astype(np.uint8)
    else:
        raise StyleTransferError(f"{name} has dtype {a.dtype}: use uint8, uint16 or float in [0, 1]")
    mode = "L" if a.ndim == 2 else ("RGB" if a.shape[-1] == 3 else "RGBA")
    return _to_rgb(Image.fromarray(np.ascontiguousarray(a), mode), name)


def _from_tensor(tensor, name):
    t = tensor.detach().float().cpu()
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] not in (1, 3, 4):
        raise StyleTransferError(f"{name} has shape {tuple(tensor.shape)}: expected (3, H, W) or (1, 3, H, W)")
    return _from_array(t.numpy(), name)


def _check_not_tiny(pil, name):
    w, h = pil.size
    if min(w, h) < MIN_SIDE_PX:
        raise StyleTransferError(
            f"{name} is {w}×{h} px: VGG-19 needs at least {MIN_SIDE_PX} px on each side; "
            "use a larger image or a larger size"
        )
