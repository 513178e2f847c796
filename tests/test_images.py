"""The image loader: every input kind, every odd mode, and every kind of bad input gives a clean ImageError."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from facelab.errors import ImageError
from facelab.images import load_image


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def test_path_bytes_pil_and_arrays_agree(astronaut, astronaut_jpg):
    from_path = load_image(astronaut_jpg)
    from_bytes = load_image(astronaut_jpg.read_bytes())
    from_pil = load_image(Image.open(astronaut_jpg))
    assert from_path.shape == (512, 512, 3) and from_path.dtype == np.uint8
    assert np.array_equal(from_path, from_bytes) and np.array_equal(from_path, from_pil)
    assert np.array_equal(load_image(astronaut), astronaut)
    assert np.array_equal(load_image(astronaut[:, :, ::-1].copy(), order="bgr"), astronaut)


def test_exif_orientation_is_applied(astronaut):
    img = Image.fromarray(astronaut[:, :400])  # 400 wide, 512 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = _png(img, format="JPEG", exif=exif.tobytes())
    assert load_image(data).shape == (400, 512, 3)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "1", "YCbCr"])
def test_odd_modes_become_rgb(astronaut, mode):
    img = Image.fromarray(astronaut)
    if mode == "I;16":
        arr16 = (np.asarray(img.convert("L"), dtype=np.uint16) * 257)
        img = Image.fromarray(arr16)  # 16-bit greyscale
        assert img.mode.startswith("I;16")
    else:
        img = img.convert(mode)
    fmt = "JPEG" if mode in ("CMYK", "YCbCr") else ("TIFF" if mode == "I;16" else "PNG")
    out = load_image(_png(img, format=fmt))
    assert out.shape == (512, 512, 3) and out.dtype == np.uint8
    assert 20 < out.mean() < 235  # really the photo, not black or white


def test_sixteen_bit_keeps_brightness(astronaut):
    grey = np.asarray(Image.fromarray(astronaut).convert("L"))
    img16 = Image.fromarray(grey.astype(np.uint16) * 257)
    out = load_image(_png(img16, format="TIFF"))
    assert abs(float(out[..., 0].mean()) - float(grey.mean())) < 1.0


def test_alpha_is_composited_on_white():
    rgba = np.zeros((32, 32, 4), np.uint8)  # fully transparent black
    out = load_image(_png(Image.fromarray(rgba, "RGBA")))
    assert out.min() == 255


def test_animated_gif_gives_first_frame(astronaut):
    frames = [Image.fromarray(astronaut), Image.fromarray(255 - astronaut)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    out = load_image(buf.getvalue())
    assert out.shape == (512, 512, 3)
    assert abs(float(out.mean()) - float(astronaut.mean())) < 15


def test_arrays_of_other_types():
    grey = np.full((10, 12), 128, np.uint8)
    assert load_image(grey).shape == (10, 12, 3)
    assert load_image(np.ones((10, 12, 3), np.float32)).max() == 255
    assert load_image(np.full((10, 12, 4), 7, np.uint8)).shape == (10, 12, 3)
    with pytest.raises(ImageError, match="not an image"):
        load_image(np.zeros((10, 12, 5), np.uint8))


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"this is a text file, not a photo", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "corrupt|not an image"),
])
def test_bad_bytes(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_truncated_jpeg(astronaut_jpg):
    data = astronaut_jpg.read_bytes()
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 3])


def test_huge_image_is_refused_before_decoding(monkeypatch):
    import facelab.images as images

    big = _png(Image.new("1", (9000, 9000)))  # 81 MP, a few kB compressed
    monkeypatch.setattr(images, "MAX_PIXELS", 50_000_000)
    with pytest.raises(ImageError, match="megapixels"):
        load_image(big)


def test_missing_and_unreadable_paths(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="unsupported"):
        load_image(12345)


def test_face_jpeg_is_a_small_clipped_crop_and_refuses_a_box_outside_the_image(astronaut):
    import facelab
    from facelab.images import face_jpeg

    face = facelab.detect(astronaut)[0].to_dict()["box"]
    crop = Image.open(io.BytesIO(face_jpeg(astronaut, face)))
    assert crop.format == "JPEG" and max(crop.size) == 160  # widened by 25 % a side, then shrunk to 160 px
    corner = Image.open(io.BytesIO(face_jpeg(astronaut, {"x": -50, "y": -50, "width": 100, "height": 100})))
    assert corner.size == (75, 75)  # clipped to the image: 0..75 on both axes (50 + 25 % of 100)
    with pytest.raises(ImageError, match="outside"):
        face_jpeg(astronaut, {"x": 900, "y": 900, "width": 50, "height": 50})
