"""Head circumference from a segmentation mask: the ellipse of the mask's largest region and its perimeter.

HC18 (van den Heuvel et al., PLoS ONE 2018) annotates the fetal skull as an ellipse and scores head
circumference (HC) as the perimeter of an ellipse fitted to the predicted outline, in mm from the pixel size.
:func:`fit_ellipse` takes the largest 8-connected region of a binary mask (filled or not: holes are filled first)
and the ellipse with the same second moments (for a uniformly filled ellipse of semi-axes a >= b the pixel
coordinates' covariance has eigenvalues a²/4 and b²/4, so the fit is exact up to pixelation), in physical units
when the (row, column) spacing is given - anisotropic pixels are handled by scaling the coordinates before the
moments. :func:`ellipse_perimeter` is Ramanujan's second approximation (relative error < 1e-9 for the
eccentricities of fetal heads).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ellipse:
    center: tuple[float, float]  # (row, column), in the units of the spacing
    semi_major: float
    semi_minor: float
    angle: float  # of the major axis, radians from the column axis

    @property
    def perimeter(self) -> float:
        return ellipse_perimeter(self.semi_major, self.semi_minor)


def ellipse_perimeter(a: float, b: float) -> float:
    """Perimeter of an ellipse of semi-axes ``a`` and ``b`` (Ramanujan II)."""
    if a < 0 or b < 0:
        raise ValueError(f"semi-axes must be >= 0, found {a}, {b}")
    if a + b == 0:
        return 0.0
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))


def largest_region(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected foreground region of a 2-D mask, holes filled (bool)."""
    from scipy import ndimage

    m = np.asarray(mask).astype(bool)
    if m.ndim != 2:
        raise ValueError(f"expected a 2-D mask, found shape {m.shape}")
    lab, n = ndimage.label(m, structure=np.ones((3, 3), bool))
    if n == 0:
        return m
    sizes = np.bincount(lab.ravel())[1:]
    return ndimage.binary_fill_holes(lab == 1 + int(np.argmax(sizes)))


def fit_ellipse(mask: np.ndarray, spacing: tuple[float, float] | None = None, *,
                min_pixels: int = 10) -> Ellipse | None:
    """The moment ellipse of ``mask``'s largest region (module docstring), in mm when ``spacing`` (row, column)
    is given, else in pixels; None when the region has fewer than ``min_pixels`` pixels."""
    region = largest_region(mask)
    rr, cc = np.nonzero(region)
    if rr.size < min_pixels:
        return None
    sy, sx = spacing if spacing is not None else (1.0, 1.0)
    pts = np.stack([rr * float(sy), cc * float(sx)], 1).astype(np.float64)
    c = pts.mean(0)
    cov = np.cov((pts - c).T, bias=True) + np.eye(2) * (float(sy) * float(sx)) / 12  # pixel area, not points
    w, v = np.linalg.eigh(cov)
    b, a = (2 * math.sqrt(max(x, 0.0)) for x in w)
    major = v[:, 1]
    return Ellipse((float(c[0]), float(c[1])), a, b, float(math.atan2(major[0], major[1])))


def head_circumference(mask: np.ndarray, spacing: tuple[float, float] | None = None) -> float:
    """Head circumference of a fetal-head mask: the perimeter of :func:`fit_ellipse`'s ellipse, in mm with
    ``spacing`` (else pixels); NaN for an empty (or near-empty) mask."""
    e = fit_ellipse(mask, spacing)
    return math.nan if e is None else e.perimeter
