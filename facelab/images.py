"""The one place images enter facelab.

Everything downstream works on an RGB ``uint8`` array of shape (H, W, 3). `load_image` turns any supported
input into that: a path, raw bytes, a PIL image, or a NumPy array (whose channel order the caller states).
EXIF orientation is honoured, odd modes (16-bit, CMYK, palette, alpha, animated) are converted, and the pixel
count and the decoded size in bytes (channels x bit depth: a 16-bit or float image takes 2-4x an 8-bit one) are
checked from the header *before* decoding, so a decompression bomb never reaches memory. Conversion to RGB goes
band by band, so it needs little more than the decoded image and the RGB result (no float64 copies).
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Union

import numpy as np

from .errors import ImageError

if TYPE_CHECKING:  # Pillow is imported where an image is decoded, not when facelab is
    import PIL.Image

# 50 megapixels: larger than any camera photo people feed a face tool, far below what would exhaust memory.
MAX_PIXELS = int(os.environ.get("FACELAB_MAX_PIXELS", 50_000_000))
MAX_BYTES = int(os.environ.get("FACELAB_MAX_BYTES", 100 * 1024 * 1024))
# Decoded pixel memory: a 50 MP 8-bit RGB photo (150 MB). A 16-bit grey image may then have 75 MP of pixels by
# this rule (but MAX_PIXELS still holds), a 32-bit float one 37 MP, an RGBA one 37 MP.
MAX_DECODED_BYTES = int(os.environ.get("FACELAB_MAX_DECODED_BYTES", 3 * MAX_PIXELS))
BAND_BYTES = 8 * 2**20  # conversion works on horizontal bands of about this many decoded bytes

# Bytes per pixel of each Pillow mode's data (channels x bytes per channel).
MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "La": 2, "PA": 2, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2,
              "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "I": 4, "F": 4, "RGBA": 4, "RGBa": 4, "RGBX": 4,
              "CMYK": 4}

ImageInput = Union[str, os.PathLike, bytes, bytearray, np.ndarray, "PIL.Image.Image"]
ChannelOrder = Literal["rgb", "bgr"]


def load_image(source: ImageInput, order: ChannelOrder = "rgb") -> np.ndarray:
    """Return `source` as a contiguous RGB uint8 array (H, W, 3).

    `order` only matters for NumPy input: it says whether the array's channels are RGB (PIL, scikit-image,
    matplotlib) or BGR (OpenCV's `cv2.imread`). Raises `ImageError` with a one-line reason.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, order)
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow is a hard dependency
        raise ImageError("Pillow is not installed") from exc
    if isinstance(source, Image.Image):
        return _from_pil(source, "<PIL image>")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = "<bytes>"
    elif isinstance(source, (str, os.PathLike)):
        name = str(source)
        data = _read_file(Path(source))
    else:
        raise ImageError(f"unsupported image input of type {type(source).__name__}")
    if not data:
        raise ImageError(f"{name}: empty file")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{name}: file is {len(data) / 2**20:.0f} MiB, over the {MAX_BYTES / 2**20:.0f} MiB limit")
    return _decode(data, name)


def _read_file(path: Path) -> bytes:
    try:
        if path.is_dir():
            raise ImageError(f"{path}: is a directory, not an image")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ImageError(f"{path}: file is {size / 2**20:.0f} MiB, over the {MAX_BYTES / 2**20:.0f} MiB limit")
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _decode(data: bytes, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size  # read from the header; nothing decoded yet
            check_header(name, img.mode, w, h)
            return _from_pil(img, name)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: image is too large to decode safely") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{name}: corrupt or truncated image ({exc})") from None


def decoded_bytes(mode: str, width: int, height: int) -> int:
    """Bytes the decoded pixels of an image of this Pillow mode and size take (channels x bit depth)."""
    return width * height * MODE_BYTES.get(mode, 4)


def check_header(name: str, mode: str, width: int, height: int, max_pixels: int | None = None,
                 max_decoded_bytes: int | None = None) -> None:
    """Refuse, from the header alone, an image with too many pixels or too many decoded bytes."""
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    max_decoded_bytes = MAX_DECODED_BYTES if max_decoded_bytes is None else max_decoded_bytes
    if width <= 0 or height <= 0:
        raise ImageError(f"{name}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(f"{name}: {width}x{height} is {width * height / 1e6:.0f} megapixels, over the "
                         f"{max_pixels / 1e6:.0f} MP limit")
    size = decoded_bytes(mode, width, height)
    if size > max_decoded_bytes:
        raise ImageError(f"{name}: {width}x{height} {mode} decodes to {size / 2**20:.0f} MiB of pixels, over the "
                         f"{max_decoded_bytes / 2**20:.0f} MiB limit")


def _from_pil(img, name: str) -> np.ndarray:
    from PIL import ImageOps

    if getattr(img, "is_animated", False):
        img.seek(0)  # animated GIF/WebP/APNG: the first frame is the photo people mean
    check_header(name, img.mode, *img.size)
    img.load()
    try:
        if img.getexif().get(0x0112, 1) != 1:  # exif_transpose copies the whole image even when nothing turns
            img = ImageOps.exif_transpose(img)
    except Exception:  # a malformed EXIF block must not make the photo unreadable
        pass
    w, h = img.size
    if w == 0 or h == 0:
        raise ImageError(f"{name}: image has no pixels")
    # Converted in bands into one RGB array: peak memory = decoded image + result + a band (np.asarray on the
    # whole image would add two more full copies: Pillow's tobytes() chunks and their join).
    out = np.empty((h, w, 3), np.uint8)
    scale = _depth_scale(img) if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F") else None
    rows = max(1, BAND_BYTES // max(1, w * MODE_BYTES.get(img.mode, 4)))
    for y in range(0, h, rows):
        out[y:y + rows] = _band_to_rgb(img.crop((0, y, w, min(h, y + rows))), scale)
    return out


def _depth_scale(img) -> tuple[float, float]:
    """(offset, factor) taking a 16-bit, 32-bit integer or float image's values to 0-255: floats within 0-1 are
    fractions, other images are read as 16-bit when any value exceeds 255, else as 8-bit values."""
    if img.mode == "F":  # the extremes of the finite values (NaN and infinities are clipped later)
        w, h = img.size
        rows = max(1, BAND_BYTES // (4 * w))
        lo, hi = np.inf, -np.inf
        for y in range(0, h, rows):
            band = np.asarray(img.crop((0, y, w, min(h, y + rows))), np.float32)
            finite = band[np.isfinite(band)]
            if finite.size:
                lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
        if lo > hi:
            lo = hi = 0.0
    else:
        lo, hi = (float(v) for v in img.getextrema())
    if img.mode == "F" and 0.0 <= lo and hi <= 1.0:
        return 0.0, 255.0
    return 0.0, 255.0 / (65535.0 if hi > 255 else 255.0)


def _band_to_rgb(band, scale: tuple[float, float] | None) -> np.ndarray:
    from PIL import Image

    if scale is not None:
        arr = np.asarray(band, dtype=np.float32)
        arr = np.nan_to_num(arr, nan=0.0, posinf=255.0 / scale[1], neginf=0.0)
        gray = np.clip(np.round((arr - scale[0]) * scale[1]), 0, 255).astype(np.uint8)
        return gray[:, :, None]
    if band.mode == "P":
        band = band.convert("RGBA")
    if band.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        background = Image.new("RGBA", band.size, (255, 255, 255, 255))
        band = Image.alpha_composite(background, band.convert("RGBA"))
    if band.mode != "RGB":
        band = band.convert("RGB")  # CMYK, YCbCr, L, 1, LAB ...
    return np.asarray(band, dtype=np.uint8)


def _scale_to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    arr = arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.floating) and arr.size and arr.max() <= 1.0 and arr.min() >= 0.0:
        return np.round(arr * 255).astype(np.uint8)
    top = 65535.0 if arr.max(initial=0) > 255 else 255.0
    return np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8)


def _gray_to_rgb(arr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))


def _from_array(arr: np.ndarray, order: ChannelOrder) -> np.ndarray:
    if order not in ("rgb", "bgr"):
        raise ImageError(f"channel order must be 'rgb' or 'bgr', not {order!r}")
    if arr.ndim == 2:
        arr = _gray_to_rgb(_scale_to_uint8(arr))
        order = "rgb"
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"array of shape {arr.shape} is not an image (expected HxW, HxWx3 or HxWx4)")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise ImageError(f"array of {arr.shape[1]}x{arr.shape[0]} is over the {MAX_PIXELS / 1e6:.0f} MP limit")
    if arr.shape[2] == 1:
        arr = _gray_to_rgb(_scale_to_uint8(arr[:, :, 0]))
        order = "rgb"
    arr = _scale_to_uint8(arr[:, :, :3])
    if order == "bgr":
        arr = arr[:, :, ::-1]
    return np.ascontiguousarray(arr)


def to_bgr(rgb: np.ndarray) -> np.ndarray:
    """OpenCV models want BGR; this is the only conversion point."""
    return np.ascontiguousarray(rgb[:, :, ::-1])


def save_image(rgb: np.ndarray, path: str | os.PathLike) -> None:
    """Write an RGB array; the format follows the file name. A one-line FacelabError (exit 2) if it cannot."""
    from PIL import Image

    from .errors import FacelabError

    try:
        Image.fromarray(rgb).save(path)
    except ValueError as exc:  # an extension Pillow does not know
        raise FacelabError(f"{path}: cannot write the image ({exc}; use .jpg or .png)") from None
    except OSError as exc:
        raise FacelabError(f"{path}: cannot write the image ({exc.strerror or exc})") from None


def face_jpeg(rgb: np.ndarray, box: dict[str, float], margin: float = 0.25, max_side: int = 160,
              quality: int = 90) -> bytes:
    """A small JPEG of one face (its box widened by `margin` per side, clipped to the image, the longer side at most
    `max_side` px): what a gallery keeps when asked to keep faces (a few KB each)."""
    from PIL import Image

    h, w = rgb.shape[:2]
    mx, my = box["width"] * margin, box["height"] * margin
    x0, y0 = max(0, int(box["x"] - mx)), max(0, int(box["y"] - my))
    x1, y1 = min(w, int(np.ceil(box["x"] + box["width"] + mx))), min(h, int(np.ceil(box["y"] + box["height"] + my)))
    if x1 <= x0 or y1 <= y0:
        raise ImageError(f"face box {box} lies outside the {w}x{h} image")
    crop = Image.fromarray(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
    crop.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    crop.save(out, format="JPEG", quality=quality)
    return out.getvalue()
