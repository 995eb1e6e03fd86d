"""Resampling of large 2-D images in row chunks (numpy only, no torch): memory stays proportional to one chunk
of rows plus the output, never to a float copy of the whole input.

* :func:`area_resize` — area averaging, the same as ``F.interpolate(x, size, mode="area")`` (adaptive average
  pooling: output row ``i`` averages input rows ``floor(i H / h)`` to ``ceil((i + 1) H / h)``, likewise columns),
  for reducing an image to about a model's input size. Integer images are scaled to [0, 1] on the fly
  (:func:`unit_scale`).
* :func:`bilinear_rows` / :func:`bilinear_resize` — bilinear resizing identical to
  ``F.interpolate(x, size, mode="bilinear", align_corners=False)`` (up to float rounding), produced row chunk by
  row chunk, for mapping a small prediction back onto a large image.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np


def unit_scale(dtype: np.dtype) -> float:
    """The factor that maps an image of ``dtype`` to [0, 1]: 1/255 for uint8, 1/65535 for uint16 (as
    :func:`sonokit.data.io.read_image` scales 8- and 16-bit images), 1 for bool and floating point."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_ or np.issubdtype(dtype, np.floating):
        return 1.0
    if np.issubdtype(dtype, np.unsignedinteger):
        return 1.0 / float(np.iinfo(dtype).max)
    raise TypeError(f"expected a bool, unsigned integer or floating-point image, found dtype {dtype}")


def _windows(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive-pooling windows [start, end) of each of ``n_out`` outputs over ``n_in`` inputs."""
    i = np.arange(n_out, dtype=np.int64)
    return (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)  # floor, ceil


def area_resize(image: np.ndarray, out_h: int, out_w: int, *, rows: int = 512) -> np.ndarray:
    """Area-average an (H, W) image to (out_h, out_w) float32 in [0, 1] (integer input scaled by
    :func:`unit_scale`), reading about ``rows`` input rows at a time (converted to float64 one chunk at a time).

    Equal to ``F.interpolate(x[None, None] * scale, (out_h, out_w), mode="area")`` within float rounding; meant
    for reductions (``out_h <= H``, ``out_w <= W``), though any size works."""
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image (H, W), found shape {image.shape}")
    H, W = image.shape
    if out_h < 1 or out_w < 1:
        raise ValueError(f"output size must be at least 1x1, found {out_h}x{out_w}")
    scale = unit_scale(image.dtype)
    r_lo, r_hi = _windows(H, out_h)
    c_lo, c_hi = _windows(W, out_w)
    c_count = (c_hi - c_lo).astype(np.float64)
    out = np.empty((out_h, out_w), np.float32)
    per_block = max(1, int(rows * out_h / H))  # output rows per chunk
    for i0 in range(0, out_h, per_block):
        i1 = min(out_h, i0 + per_block)
        lo, hi = int(r_lo[i0]), int(r_hi[i1 - 1])
        chunk = image[lo:hi].astype(np.float64)  # (r, W)
        if scale != 1.0:
            chunk *= scale
        cs = np.zeros((hi - lo, W + 1))
        np.cumsum(chunk, axis=1, out=cs[:, 1:])
        del chunk
        cols = (cs[:, c_hi] - cs[:, c_lo]) / c_count  # (r, out_w): column means of each row
        rs = np.zeros((hi - lo + 1, out_w))
        np.cumsum(cols, axis=0, out=rs[1:])
        a, b = r_lo[i0:i1] - lo, r_hi[i0:i1] - lo
        out[i0:i1] = (rs[b] - rs[a]) / (b - a)[:, None]
    return out


def _linear(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (i0, i1) and weight of i1 for each output, as PyTorch's align_corners=False."""
    # in float32, as PyTorch computes them for float tensors
    src = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * np.float32(n_in / n_out) - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def bilinear_rows(small: np.ndarray, out_h: int, out_w: int, *, rows: int = 256
                  ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Bilinearly resize an (h, w) array to (out_h, out_w) (``align_corners=False``), yielding
    ``(r0, r1, chunk)`` with ``chunk`` the float32 output rows ``r0:r1`` (at most ``rows`` of them).

    Memory: the (h, out_w) column-resized array plus one chunk."""
    if small.ndim != 2:
        raise ValueError(f"expected a 2-D array (h, w), found shape {small.shape}")
    h, w = small.shape
    x0, x1, lx = _linear(w, out_w)
    s = np.asarray(small, np.float32)
    cols = s[:, x0] * (1 - lx) + s[:, x1] * lx  # (h, out_w)
    y0, y1, ly = _linear(h, out_h)
    for r0 in range(0, out_h, rows):
        r1 = min(out_h, r0 + rows)
        wy = ly[r0:r1, None]
        yield r0, r1, cols[y0[r0:r1]] * (1 - wy) + cols[y1[r0:r1]] * wy


def bilinear_resize(small: np.ndarray, out_h: int, out_w: int, *, rows: int = 256) -> np.ndarray:
    """:func:`bilinear_rows` assembled into one float32 (out_h, out_w) array."""
    out = np.empty((out_h, out_w), np.float32)
    for r0, r1, chunk in bilinear_rows(small, out_h, out_w, rows=rows):
        out[r0:r1] = chunk
    return out
