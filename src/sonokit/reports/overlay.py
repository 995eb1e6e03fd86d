"""A predicted mask drawn over its image: tinted region and outline, as ``sonokit segment`` writes it."""
from __future__ import annotations

import numpy as np

OVERLAY_MAX_SIDE = 2048  # overlays of larger (large-path) images are written downscaled to this long side


def erode(mask: np.ndarray, iterations: int) -> np.ndarray:
    """Binary erosion by the 4-connected cross, ``iterations`` times, outside the image counted as background:
    ``scipy.ndimage.binary_erosion(mask, iterations=n)`` in NumPy (no scipy import on the inference path)."""
    m = np.asarray(mask, bool)
    for _ in range(iterations):
        e = np.zeros_like(m)
        e[1:-1, 1:-1] = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
        m = e
    return m


def overlay(image: np.ndarray, mask: np.ndarray, color=(1.0, 0.2, 0.2), alpha: float = 0.35) -> np.ndarray:
    """(H, W) gray in [0, 1] + (H, W) bool -> (H, W, 3) uint8 with the mask tinted and its outline drawn
    (outline width about 1/300 of the long side)."""
    rgb = np.repeat(image[..., None], 3, axis=-1).astype(np.float32)
    c = np.array(color, np.float32)
    rgb[mask] = (1 - alpha) * rgb[mask] + alpha * c
    edge = mask & ~erode(mask, max(1, round(max(mask.shape) / 300)))
    rgb[edge] = c
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def overlay_downscaled(image: np.ndarray, mask: np.ndarray, *, max_side: int = OVERLAY_MAX_SIDE, **kw) -> np.ndarray:
    """:func:`overlay` of a large image at most ``max_side`` pixels on its long side: the image (float in
    [0, 1], or uint8/uint16) is area-averaged to that size in row chunks, the mask likewise (a pixel is in
    the mask when at least half of its area is). Images already that small are drawn at full size."""
    from ..data.resample import area_resize, unit_scale

    H, W = mask.shape
    s = min(1.0, max_side / max(H, W))
    h, w = max(1, round(H * s)), max(1, round(W * s))
    if (h, w) == (H, W):
        img = image.astype(np.float32) * np.float32(unit_scale(image.dtype)) if image.dtype.kind in "ub" else image
        return overlay(img, mask, **kw)
    return overlay(area_resize(image, h, w), area_resize(mask, h, w) >= 0.5, **kw)
