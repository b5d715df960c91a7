"""Loading every kind of picture a user may have, and saving without losing anything."""

import io
import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image, JpegImagePlugin

import helpers.images as images
from helpers import StyleTransferError, image_to_tensor, load_image, save_image, tensor_to_image


def _pixel(t, x, y):
    return [round(v * 255) for v in t[0, :, y, x].tolist()]


def test_path_loads_as_rgb_tensor_in_unit_range(rgb_file):
    t = load_image(rgb_file)
    assert t.shape == (1, 3, 80, 120) and t.dtype == torch.float32
    assert 0 <= t.min() and t.max() <= 1


def test_resize_by_long_edge_keeps_aspect_ratio(rgb_file):
    assert load_image(rgb_file, size_px=60).shape == (1, 3, 40, 60)
    assert load_image(rgb_file, size_px=240).shape == (1, 3, 160, 240)  # upscaling is allowed


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (100, 50), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    im.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").shape == (1, 3, 100, 50)


@pytest.mark.parametrize("mode,color,expected", [
    ("L", 128, [128, 128, 128]),
    ("CMYK", (0, 255, 255, 0), [255, 0, 0]),
])
def test_other_modes_become_rgb(tmp_path, mode, color, expected):
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    Image.new(mode, (40, 40), color).save(path, quality=100)
    got = _pixel(load_image(path), 5, 5)
    assert got == pytest.approx(expected, abs=3)


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    im = Image.new("P", (40, 40), 0)
    im.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    im.info["transparency"] = 0
    im.save(tmp_path / "p.png", transparency=0)
    assert _pixel(load_image(tmp_path / "p.png"), 3, 3) == [255, 255, 255]


def test_alpha_is_composited_on_white(tmp_path):
    im = Image.new("RGBA", (40, 40), (255, 0, 0, 128))
    im.putpixel((0, 0), (0, 0, 0, 0))
    im.save(tmp_path / "a.png")
    t = load_image(tmp_path / "a.png")
    assert _pixel(t, 0, 0) == [255, 255, 255]
    assert _pixel(t, 5, 5) == pytest.approx([255, 127, 127], abs=1)  # half red over white


def test_sixteen_bit_grayscale_keeps_its_range(tmp_path):
    array = np.full((40, 40), 65535, dtype=np.uint16)
    array[:, :20] = 32768
    Image.fromarray(array).save(tmp_path / "deep.png")
    t = load_image(tmp_path / "deep.png")
    assert _pixel(t, 30, 5) == [255, 255, 255]
    assert _pixel(t, 5, 5) == pytest.approx([128, 128, 128], abs=1)


def test_file_like_bytes_pil_array_and_tensor_sources(rgb_file):
    expected = load_image(rgb_file)
    data = rgb_file.read_bytes()
    assert torch.equal(load_image(io.BytesIO(data)), expected)
    assert torch.equal(load_image(data), expected)
    pil = Image.open(rgb_file)
    assert torch.equal(load_image(pil), expected)
    array = np.asarray(pil.convert("RGB"))
    assert torch.equal(load_image(array), expected)
    assert torch.allclose(load_image(array.astype(np.float32) / 255), expected, atol=1 / 255)
    assert torch.allclose(load_image(expected), expected, atol=1 / 255)
    assert torch.equal(load_image(array.astype(np.uint16) * 257), expected)


def test_tensor_image_round_trip(rgb_file):
    pil = Image.open(rgb_file).convert("RGB")
    assert np.array_equal(np.asarray(tensor_to_image(image_to_tensor(pil))), np.asarray(pil))


def test_huge_jpeg_is_decoded_at_reduced_scale(tmp_path, monkeypatch):
    Image.new("RGB", (4000, 3000), "green").save(tmp_path / "huge.jpg")
    drafts = []
    original = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft",
                        lambda self, mode, size: drafts.append(size) or original(self, mode, size))
    t = load_image(tmp_path / "huge.jpg", size_px=256)
    assert t.shape == (1, 3, 192, 256)
    assert drafts == [(256, 256)]


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make,message", [
    (lambda d: d / "missing.jpg", "no such file"),
    (lambda d: d, "is a folder"),
    (lambda d: _write(d / "empty.jpg", b""), "is empty"),
    (lambda d: _write(d / "notes.jpg", b"hello, not a picture"), "not an image"),
    (lambda d: _write(d / "drawing.svg", b"<svg></svg>"), "unsupported format"),
])
def test_bad_files_get_one_clear_line(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(StyleTransferError, match=message) as err:
        load_image(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_jpeg_is_reported(tmp_path, rgb_file):
    data = rgb_file.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(StyleTransferError, match="damaged or truncated"):
        load_image(tmp_path / "cut.jpg")


def test_too_small_images_and_sizes(tmp_path):
    Image.new("RGB", (20, 100)).save(tmp_path / "thin.png")
    with pytest.raises(StyleTransferError, match="20×100 px.*at least 32"):
        load_image(tmp_path / "thin.png", size_px=256)
    for bad in (0, -5, 8):
        with pytest.raises(StyleTransferError, match="too small"):
            load_image(tmp_path / "thin.png", size_px=bad)
    with pytest.raises(StyleTransferError, match="whole number"):
        load_image(tmp_path / "thin.png", size_px=12.5)


def test_save_refuses_to_overwrite_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    with pytest.raises(StyleTransferError, match="already exists.*--overwrite"):
        save_image(torch.rand(1, 3, 40, 40), target)
    assert target.read_bytes() == b"precious"
    save_image(torch.rand(1, 3, 40, 40), target, overwrite=True)
    assert Image.open(target).size == (40, 40)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temporary files left


def test_a_saved_file_gets_ordinary_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        path = save_image(torch.rand(1, 3, 40, 40), tmp_path / "p.png")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_save_stores_settings_in_png_metadata(tmp_path):
    path = save_image(torch.rand(1, 3, 40, 40), tmp_path / "m.png", metadata={"Settings": "style_weight=10"})
    assert Image.open(path).text["Settings"] == "style_weight=10"


def test_save_errors_for_bad_targets(tmp_path):
    with pytest.raises(StyleTransferError, match="unknown file type '.xyz'"):
        save_image(torch.rand(1, 3, 40, 40), tmp_path / "out.xyz")
    with pytest.raises(StyleTransferError, match="does not exist"):
        save_image(torch.rand(1, 3, 40, 40), tmp_path / "no" / "out.png")


def test_a_write_that_fails_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken_save(self, fp, format=None, **kw):
        fp.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(StyleTransferError, match="No space left"):
        save_image(torch.rand(1, 3, 40, 40), tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


def test_free_path_never_returns_an_existing_file(tmp_path):
    (tmp_path / "a.png").write_bytes(b"1")
    (tmp_path / "a-1.png").write_bytes(b"2")
    assert images.free_path(tmp_path / "a.png") == tmp_path / "a-2.png"
    assert images.free_path(tmp_path / "b.png") == tmp_path / "b.png"


def test_bundled_images_are_there():
    assert {"city", "cat", "astronaut"} <= set(images.bundled_images("content"))
    assert len(images.bundled_images("style")) >= 4
    with pytest.raises(StyleTransferError):
        images.bundled_images("music")
