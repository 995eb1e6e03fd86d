"""Reading and writing 2-D images and masks, with clear errors and documented conversions.

Conversions (each recorded in the returned ``info`` dict, never silent):

* 8-bit gray (``L``) and 1-bit (``1``): scaled to [0, 1] by the type's maximum.
* RGB / palette: if the three channels are identical the image is gray; otherwise (colour overlays, Doppler
  boxes) it is converted to luma with ITU-R BT.601 weights and ``info["colour"] = True``.
* RGBA / LA: the alpha channel is dropped when fully opaque; an image with transparent pixels raises
  :class:`DataError` (there is no right way to guess the background).
* 16-bit gray (``I;16``, ``I``): scaled by 65535 to [0, 1], ``info["bit_depth"] = 16``.

Masks: any image mode; a mask with one value is all background (0) or all foreground (non-zero); with two
values, foreground is the larger; otherwise it is thresholded at half its maximum and ``nonbinary`` is
reported.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError, WriteError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)



def publish(tmp: str | Path, path: str | Path) -> None:
    """Give a finished temporary file the usual permissions (0666 less the umask; ``mkstemp`` makes it 0600)
    and rename it over ``path`` in one step (the atomic half of every sonokit write)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)

def atomic_write(path: str | Path, write) -> Path:
    """Write ``path`` atomically: ``write(tmp)`` fills a temporary file beside it, which then replaces ``path``
    in one step (:func:`publish`); a crash leaves the old file (or none), never a truncated one. Creates the
    parent folder; returns ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        write(tmp)
        publish(tmp, path)
    except (OSError, RuntimeError) as e:  # ENOSPC, EROFS, EACCES; torch's writer reports ENOSPC as RuntimeError
        raise WriteError(write_failure(path, e)) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_failure(path: Path, e: BaseException) -> str:
    """Why writing ``path`` failed, for a :class:`WriteError`: the reason, a full disk named as such, and
    whether an earlier version of the file is kept."""
    import shutil

    reason = e.strerror if isinstance(e, OSError) and e.strerror else (str(e).strip().splitlines() or ["?"])[0][:200]
    try:
        full = shutil.disk_usage(path.parent).free < (1 << 20)
    except OSError:
        full = False
    return (f"could not write '{path}': {reason}" + ("; the disk holding it is full" if full else "")
            + ("; the previous version of the file is kept" if path.exists() else "; nothing was written"))


def _open(path: Path) -> Image.Image:
    path = Path(path)
    if not path.exists():
        raise DataError(f"image '{path}' does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"image '{path}' is an empty file; expected a PNG/JPEG/BMP/TIFF image")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(
            f"cannot read image '{path}': {e}; expected a complete PNG/JPEG/BMP/TIFF file (is it truncated or corrupt?)"
        ) from None
    return img


def _to_array(img: Image.Image, path: Path, info: dict) -> np.ndarray:
    """PIL image -> float32 (H, W) in [0, 1]."""
    mode = img.mode
    info["mode"] = mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA"):
        a = np.asarray(img)[..., -1]
        if a.min() < 255:
            raise DataError(
                f"image '{path}' is {mode} with {int((a < 255).sum())} transparent pixels; "
                "expected an opaque gray or RGB image (flatten it onto a background first)"
            )
        info["alpha_dropped"] = True
        img = img.convert("RGB" if mode == "RGBA" else "L")
        mode = img.mode
    if mode == "1":
        return np.asarray(img, dtype=np.float32)
    if mode == "L":
        return np.asarray(img, dtype=np.float32) / 255.0
    if mode == "RGB":
        rgb = np.asarray(img, dtype=np.float32)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return rgb[..., 0] / 255.0
        info["colour"] = True
        return (rgb @ _BT601) / 255.0
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float32)
        if arr.min() < 0 or arr.max() > 65535:
            raise DataError(f"image '{path}' is a {mode} image with values outside 0..65535; expected 8- or 16-bit")
        info["bit_depth"] = 16
        return arr / 65535.0
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise DataError(f"image '{path}' holds NaN or Inf pixels; expected finite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 1:
            raise DataError(f"image '{path}' is floating point with range [{lo:g}, {hi:g}]; expected [0, 1]")
        return arr
    raise DataError(f"image '{path}' has unsupported mode {mode}; expected gray, RGB or 16-bit gray")


def read_image(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read a 2-D image as float32 of shape (H, W) in [0, 1].

    Returns the array and an ``info`` dict recording any conversion (see module docstring).
    Raises :class:`DataError` naming the file for unreadable, truncated or unsupported images.
    """
    path = Path(path)
    info: dict = {}
    arr = _to_array(_open(path), path, info)
    if arr.ndim != 2:
        raise DataError(f"image '{path}' has shape {arr.shape}; expected a single 2-D frame")
    return np.ascontiguousarray(arr, dtype=np.float32), info


def image_shape(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image file from its header (no pixels decoded)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"image '{path}' does not exist")
    try:
        with Image.open(path) as img:
            w, h = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image '{path}': {e}; expected a complete PNG/JPEG/BMP/TIFF file (is it "
                        "truncated or corrupt?)") from None
    return h, w


def read_image_lowmem(path: str | Path, *, rows: int = 512) -> tuple[np.ndarray, dict]:
    """Read a 2-D image WITHOUT a float copy, for images too large for :func:`read_image`'s float32 array:
    uint8 (H, W) for 8-bit gray, 1-bit (as 0/255) and colour images, uint16 for 16-bit gray (scale to [0, 1]
    with :func:`sonokit.data.resample.unit_scale`), float32 for floating-point images.

    Conversions as :func:`read_image` (recorded in ``info``), except that colour is converted to luma in chunks
    of ``rows`` rows and rounded to uint8 (an error below half a grey level)."""
    path = Path(path)
    info: dict = {}
    img = _open(path)
    mode = img.mode
    if mode in ("1", "P", "RGBA", "LA", "PA", "F"):  # small conversions, or checks, as read_image does them
        if mode == "1":
            img = img.convert("L")
        elif mode == "F":
            return read_image(path)
        else:
            info["mode"] = mode
            if mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            if img.mode in ("RGBA", "LA", "PA"):
                a = np.asarray(img.getchannel("A"))
                if a.min() < 255:
                    raise DataError(f"image '{path}' is {img.mode} with {int((a < 255).sum())} transparent pixels; "
                                    "expected an opaque gray or RGB image (flatten it onto a background first)")
                info["alpha_dropped"] = True
                img = img.convert("RGB" if img.mode == "RGBA" else "L")
    info.setdefault("mode", mode)
    if img.mode == "L":
        return np.asarray(img), info  # a new (read-only) buffer, not a view of PIL's
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        info["bit_depth"] = 16
        return np.asarray(img).astype(np.uint16, copy=False), info
    if img.mode != "RGB":
        return read_image(path)  # 32-bit integer images: rare, read as float32
    rgb = np.asarray(img)  # (H, W, 3) uint8
    del img
    if all(np.array_equal(rgb[r:r + rows, :, 0], rgb[r:r + rows, :, c]) for c in (1, 2) for r in range(0, len(rgb), rows)):
        return np.ascontiguousarray(rgb[..., 0]), info
    info["colour"] = True
    gray = np.empty(rgb.shape[:2], np.uint8)
    for r in range(0, len(rgb), rows):
        gray[r:r + rows] = np.clip(np.round(rgb[r:r + rows].astype(np.float32) @ _BT601), 0, 255)
    return gray, info


def read_mask(path: str | Path) -> tuple[np.ndarray, bool]:
    """Read a binary mask as uint8 (H, W) in {0, 1}; returns (mask, nonbinary)."""
    path = Path(path)
    img = _open(path)
    if img.mode in ("RGBA", "LA", "PA", "P"):
        img = img.convert("RGB")
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr.max(axis=-1)
    values = np.unique(arr)
    if values.size == 1:  # all background (0) or all foreground (any non-zero value)
        return np.full(arr.shape, int(values[0] > 0), np.uint8), False
    if values.size == 2:
        return (arr > values.min()).astype(np.uint8), False
    return (arr >= arr.max() / 2).astype(np.uint8), True


def write_png(path: str | Path, array: np.ndarray) -> Path:
    """Write a (H, W) array as 8-bit PNG atomically. Floats are taken in [0, 1]; uint8 {0,1} masks become {0,255}."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.dtype == np.bool_ or (a.dtype == np.uint8 and a.max(initial=0) <= 1):
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = to_uint8(a)
    return write_gray_png(path, a)


def to_uint8(image: np.ndarray, *, rows: int = 1024) -> np.ndarray:
    """[0, 1] float (H, W) -> uint8 with rounding (computed in float64, ``rows`` rows at a time)."""
    image = np.asarray(image)
    out = np.empty(image.shape, np.uint8)
    for r in range(0, max(1, len(image)), rows):
        out[r:r + rows] = np.clip(np.round(np.asarray(image[r:r + rows], dtype=np.float64) * 255.0), 0, 255)
    return out


def write_gray_png(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 (H, W) array as an 8-bit gray PNG atomically, values as they are (unlike
    :func:`write_png`, which takes a uint8 array holding only 0 and 1 for a mask)."""
    a = np.asarray(array)
    if a.dtype != np.uint8 or a.ndim != 2:
        raise ValueError(f"expected a uint8 (H, W) array, found {a.dtype} {a.shape}")
    return atomic_write(path, lambda tmp: Image.fromarray(a).save(tmp, format="PNG"))


def write_map_png(path: str | Path, m: np.ndarray) -> Path:
    """A map in [0, 1] (float, or uint8 already x 255, as the large-image path gives) as an 8-bit gray PNG,
    value x 255 rounded; unlike :func:`write_png`, a uint8 map is never read as a 0/1 mask."""
    return write_gray_png(path, m if m.dtype == np.uint8 else to_uint8(m))


def safe_name(sample_id: str) -> str:
    """A sample id as a file name: runs of characters other than letters, digits, '.', '_' and '-' become '_'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", sample_id).strip("_")


def sha256_file(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
