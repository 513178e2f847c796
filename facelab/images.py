"""The one place images enter facelab.

Everything downstream works on an RGB ``uint8`` array of shape (H, W, 3). `load_image` turns any supported
input into that: a path, raw bytes, a PIL image, or a NumPy array (whose channel order the caller states).
EXIF orientation is honoured, odd modes (16-bit, CMYK, palette, alpha, animated) are converted, and the pixel
count is checked from the header *before* decoding so a decompression bomb never reaches memory.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Literal, Union

import numpy as np

from .errors import ImageError

# 50 megapixels: larger than any camera photo people feed a face tool, far below what would exhaust memory.
MAX_PIXELS = int(os.environ.get("FACELAB_MAX_PIXELS", 50_000_000))
MAX_BYTES = int(os.environ.get("FACELAB_MAX_BYTES", 100 * 1024 * 1024))

ImageInput = Union[str, os.PathLike, bytes, bytearray, np.ndarray, "PIL.Image.Image"]  # noqa: F821
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
            if w * h > MAX_PIXELS:
                raise ImageError(f"{name}: {w}x{h} is {w * h / 1e6:.0f} megapixels, over the {MAX_PIXELS / 1e6:.0f} MP limit")
            return _from_pil(img, name)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: image is too large to decode safely") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{name}: corrupt or truncated image ({exc})") from None


def _from_pil(img, name: str) -> np.ndarray:
    from PIL import Image, ImageOps

    if getattr(img, "is_animated", False):
        img.seek(0)  # animated GIF/WebP/APNG: the first frame is the photo people mean
    img.load()
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a malformed EXIF block must not make the photo unreadable
        pass
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        return _gray_to_rgb(_scale_to_uint8(arr))
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    if img.mode != "RGB":
        img = img.convert("RGB")  # CMYK, YCbCr, L, 1, LAB ...
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"{name}: image has no pixels")
    return np.ascontiguousarray(arr)


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
    from PIL import Image

    Image.fromarray(rgb).save(path)


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
