"""Classical despeckling / denoising baselines of Khan et al. 2026: median, SRAD, BM3D (optional), NLLR.

All take and return an (H, W) float image in [0, 1] (NumPy), so the benchmark treats them alike:
``CLASSICAL.create("srad", iterations=100)(image)``.

* ``median``: ``scipy.ndimage.median_filter`` with a ``size x size`` window.
* ``srad``: speckle reducing anisotropic diffusion (Yu & Acton, IEEE TIP 11(11), 2002), vectorised NumPy:
  with the four one-sided differences ∇_N,S,W,E of I, the instantaneous coefficient of variation

      q² = (½ |∇I|²/I² - (1/16) (∇²I/I)²) / (1 + ¼ ∇²I/I)²

  drives the diffusion coefficient ``c = 1 / (1 + (q² - q0²) / (q0² (1 + q0²)))`` (clipped to [0, 1]) and
  ``I ← I + (Δt/4) div(c ∇I)``. The speckle scale ``q0`` is not given by a user ROI here: it starts at the
  median of the local coefficient of variation (std/mean in ``q0_window`` windows, a robust estimate of
  homogeneous speckle) and decays as ``q0(t) = q0(0) exp(-ρ t)`` (Yu & Acton's Eq. 37 schedule).
* ``bm3d``: the ``bm3d`` package (optional extra ``sonokit[physics]``), σ estimated when not given.
* ``nllr``: :func:`sonokit.enhance.nllr.nllr_denoise`.
* ``nllr_wiener``: one NLLR pass, then BM3D's collaborative Wiener step guided by it
  (:func:`sonokit.enhance.nllr.collaborative_wiener`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import ndimage

from ..registry import Registry

CLASSICAL: Registry[Callable[[np.ndarray], np.ndarray]] = Registry("classical denoiser")


def as_image2d(image: np.ndarray, name: str) -> np.ndarray:
    """A classical denoiser's input as a finite float64 (H, W) array: (H, W) or (1, H, W) -> (H, W).

    Raises ``ValueError`` naming the method ``name`` for another shape or NaN/Inf pixels.
    """
    x = np.asarray(image, dtype=np.float64)
    x = x[0] if x.ndim == 3 and x.shape[0] == 1 else x
    if x.ndim != 2:
        raise ValueError(f"{name} expects an (H, W) or (1, H, W) image, found shape {np.shape(image)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: the image has NaN or Inf pixels")
    return x


def median_denoise(image: np.ndarray, *, size: int = 5) -> np.ndarray:
    """Median filter, ``size x size`` window (reflect at the borders)."""
    if size < 1:
        raise ValueError(f"median size must be >= 1, found {size}")
    return ndimage.median_filter(as_image2d(image, "median"), size=size, mode="reflect").astype(np.float32)


def srad(image: np.ndarray, *, iterations: int = 100, dt: float = 0.05, rho: float = 1.0 / 6,
         q0_window: int = 5, eps: float = 1e-3) -> np.ndarray:
    """Speckle reducing anisotropic diffusion (Yu & Acton 2002); see the module docstring.

    Args:
        iterations: diffusion steps. dt: time step (stable for dt <= 0.25). rho: q0 decay rate per unit time.
        q0_window: window for the initial q0 estimate. eps: added to I (the equations divide by I).
    """
    if iterations < 0 or not 0 < dt <= 0.25 or rho < 0:
        raise ValueError(f"srad needs iterations >= 0, 0 < dt <= 0.25, rho >= 0; found {iterations}, {dt}, {rho}")
    img = as_image2d(image, "srad") + eps
    m = ndimage.uniform_filter(img, q0_window)
    v = np.maximum(ndimage.uniform_filter(img**2, q0_window) - m**2, 0)
    q0_init = float(np.median(np.sqrt(v) / m))
    for t in range(iterations):
        q0sq = (q0_init * np.exp(-rho * t * dt)) ** 2
        p = np.pad(img, 1, mode="edge")
        dN, dS = p[:-2, 1:-1] - img, p[2:, 1:-1] - img
        dW, dE = p[1:-1, :-2] - img, p[1:-1, 2:] - img
        g2 = (dN**2 + dS**2 + dW**2 + dE**2) / img**2
        lap = (dN + dS + dW + dE) / img
        qsq = (0.5 * g2 - lap**2 / 16) / (1 + 0.25 * lap) ** 2
        c = np.clip(1.0 / (1.0 + (qsq - q0sq) / (q0sq * (1 + q0sq) + 1e-12)), 0, 1)
        cp = np.pad(c, 1, mode="edge")
        div = cp[2:, 1:-1] * dS + c * dN + cp[1:-1, 2:] * dE + c * dW
        img = img + dt / 4 * div
    return np.clip(img - eps, 0, 1).astype(np.float32)


def bm3d_denoise(image: np.ndarray, *, sigma: float | None = None) -> np.ndarray:
    """BM3D (Dabov et al. 2007) from the ``bm3d`` package; σ estimated (Haar MAD) when not given."""
    try:
        import bm3d
    except ImportError:
        raise ImportError("the 'bm3d' package is not installed; pip install 'sonokit[physics]' (or bm3d)") from None
    from .nllr import estimate_noise_sigma

    x = as_image2d(image, "bm3d")
    s = estimate_noise_sigma(x) if sigma is None else float(sigma)
    if s < 0:
        raise ValueError(f"bm3d sigma must be >= 0, found {s}")
    return np.clip(bm3d.bm3d(x, sigma_psd=max(s, 1e-6)), 0, 1).astype(np.float32)


def nllr(image: np.ndarray, **kw) -> np.ndarray:
    from .nllr import nllr_denoise

    return np.asarray(nllr_denoise(as_image2d(image, "nllr").astype(np.float32), **kw), dtype=np.float32)


# NLLR as its first step, then BM3D's collaborative Wiener step (the settings are the fastest of those within
# 0.05 dB of the best found on BUSI at σ = 25/255; benchmarks/nllr_vs_bm3d.py)
NLLR_WIENER = dict(iterations=1, search=7, c=1.15, wiener=1, wiener_stride=4, wiener_search=8, wiener_k=16)


def nllr_wiener(image: np.ndarray, **kw) -> np.ndarray:
    return nllr(image, **{**NLLR_WIENER, **kw})


_HELP = {"median": "Median filter (size x size window).", "srad": "Speckle reducing anisotropic diffusion (Yu & Acton 2002).",
         "bm3d": "BM3D (the optional bm3d package); sigma estimated when not given.",
         "nllr": "Non-local low-rank patch-group denoising (the NLLR targets of Khan et al.).",
         "nllr_wiener": "One NLLR pass, then BM3D's collaborative Wiener step guided by it."}
for _name, _fn in (("median", median_denoise), ("srad", srad), ("bm3d", bm3d_denoise), ("nllr", nllr),
                   ("nllr_wiener", nllr_wiener)):
    def _factory(_fn=_fn, **kw):
        return lambda image: _fn(image, **kw)

    _factory.__name__ = _name
    CLASSICAL.register(_name, help=_HELP[_name])(_factory)
