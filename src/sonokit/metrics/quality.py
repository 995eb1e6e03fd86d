"""Image-quality metrics for enhancement: fidelity (PSNR, SSIM), contrast (CNR, gCNR), speckle (SNR),
resolution (FWHM of a point target) and edge sharpness.

All functions are pure NumPy on float64 copies of their inputs; anything ``np.asarray`` accepts works,
including CPU torch tensors (call ``.detach().cpu()`` first for GPU / autograd tensors). Each returns a
Python ``float`` (or a tuple of floats). Intensities are whatever the image holds (log-compressed B-mode
in [0, 1] for sonokit images) unless a docstring says a linear envelope is expected.
"""
from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity


def _arr(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        raise ValueError(f"{name} is empty; expected at least one value")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has {int((~np.isfinite(a)).sum())} NaN/Inf value(s); expected finite values")
    return a


def _same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes {a.shape} and {b.shape} differ; expected equal shapes")


def _image2d(x, name: str) -> np.ndarray:
    a = _arr(x, name)
    a = a.reshape(a.shape[-2:]) if a.ndim > 2 and int(np.prod(a.shape[:-2])) == 1 else a
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D image (H, W) (leading singleton dims allowed), found shape {a.shape}")
    return a


def psnr_batch(x, ref, *, data_range: float = 1.0, mse_floor: float = 0.0):
    """PSNR in dB per image of torch tensors (B, ...) -> (B,): ``10 log10(data_range² / max(MSE, mse_floor))``.

    The one PSNR of sonokit: :func:`psnr` (NumPy, one image) and the enhancement task's validation call it.
    ``inf`` where an image equals its reference and ``mse_floor`` is 0.
    """
    import torch

    if x.shape != ref.shape:
        raise ValueError(f"psnr: shapes {tuple(x.shape)} and {tuple(ref.shape)} differ; expected equal shapes")
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, found {data_range}")
    dt = torch.float64 if x.dtype == torch.float64 else torch.float32
    mse = ((x.to(dt) - ref.to(dt)) ** 2).flatten(1).mean(1).clamp_min(mse_floor)
    return 10 * torch.log10(data_range**2 / mse)


def psnr(x, ref, *, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range² / MSE(x, ref))`` over all elements.

    ``inf`` when ``x == ref``. Arrays of any (equal) shape; computed in float64 by :func:`psnr_batch`.
    """
    import torch

    a, r = _arr(x, "x"), _arr(ref, "ref")
    _same_shape(a, r, "psnr")
    return float(psnr_batch(torch.from_numpy(a.reshape(1, -1)), torch.from_numpy(r.reshape(1, -1)),
                            data_range=data_range)[0])


def ssim(x, ref, *, data_range: float = 1.0, win_size: int = 7, gaussian_weights: bool = False) -> float:
    """Mean structural similarity (Wang et al. 2004) of two (H, W) images.

    Delegates to ``skimage.metrics.structural_similarity`` (uniform ``win_size`` window by default, the
    skimage defaults K1 = 0.01, K2 = 0.03; ``gaussian_weights=True`` gives the paper's σ = 1.5 Gaussian
    window). Leading singleton dimensions, e.g. (1, 1, H, W), are dropped.
    """
    a, r = _image2d(x, "x"), _image2d(ref, "ref")
    _same_shape(a, r, "ssim")
    if min(a.shape) < win_size:
        raise ValueError(f"ssim needs images of at least {win_size}x{win_size} (win_size), found {a.shape}")
    return float(structural_similarity(a, r, data_range=data_range, win_size=win_size,
                                       gaussian_weights=gaussian_weights))


def _regions(img, roi_mask, background_mask) -> tuple[np.ndarray, np.ndarray]:
    a = _arr(img, "img")
    m1, m0 = np.asarray(roi_mask).astype(bool), np.asarray(background_mask).astype(bool)
    _same_shape(a, m1, "roi_mask vs img")
    _same_shape(a, m0, "background_mask vs img")
    if not m1.any() or not m0.any():
        raise ValueError(f"roi_mask has {int(m1.sum())} and background_mask {int(m0.sum())} pixels; expected both non-empty")
    return a[m1], a[m0]


def cnr(img, roi_mask, background_mask) -> float:
    """Contrast-to-noise ratio ``|μ_roi - μ_bg| / sqrt(σ_roi² + σ_bg²)`` (population std, ddof = 0).

    This is the common ultrasound definition (as used e.g. by Rodriguez-Molares et al. 2020). ``inf`` when both
    regions are constant and differ, 0 when they are constant and equal.
    """
    r, b = _regions(img, roi_mask, background_mask)
    num = abs(r.mean() - b.mean())
    den = math.sqrt(r.var() + b.var())
    if den == 0:
        return math.inf if num > 0 else 0.0
    return float(num / den)


def gcnr(img, roi_mask, background_mask, *, bins: int = 256) -> float:
    """Generalized CNR (Rodriguez-Molares et al. 2020, "The generalized contrast-to-noise
    ratio", IEEE TUFFC 67(4)): ``1 - OVL``.

    ``OVL = Σ_k min(p_roi(k), p_bg(k))`` is the overlap of the two regions' intensity histograms, both
    taken on the same ``bins`` equal bins spanning the joint range. 1 for disjoint distributions
    (perfectly separable), 0 for identical ones. Invariant to any monotonic intensity map up to binning.
    """
    if bins < 2:
        raise ValueError(f"bins must be >= 2, found {bins}")
    r, b = _regions(img, roi_mask, background_mask)
    lo, hi = min(r.min(), b.min()), max(r.max(), b.max())
    if hi == lo:
        return 0.0
    edges = np.linspace(lo, hi, bins + 1)
    pr = np.histogram(r, edges)[0] / r.size
    pb = np.histogram(b, edges)[0] / b.size
    return float(1.0 - np.minimum(pr, pb).sum())


def speckle_snr(envelope_region) -> float:
    """Speckle signal-to-noise ratio ``mean / std`` (ddof = 0) of a homogeneous region.

    On the linear envelope of fully developed speckle (Rayleigh) the theoretical value is
    ``sqrt(π / (4 - π)) ≈ 1.913`` (Burckhardt 1978; Wagner et al. 1983); despeckling raises it. Computed on
    log-compressed data the number is not comparable to 1.91.
    """
    a = _arr(envelope_region, "envelope_region")
    sd = float(a.std())
    return math.inf if sd == 0 else float(a.mean() / sd)


def fwhm(profile, spacing: float = 1.0, *, baseline: float | None = 0.0) -> float:
    """Full width at half maximum of a 1-D profile with a single main peak, in units of ``spacing``.

    The half level is ``baseline + (max - baseline) / 2`` (``baseline=None``: the profile minimum). From
    the peak sample the profile is followed outwards to the first sample at or below the half level on
    each side, and each crossing is located by linear interpolation between the two bracketing samples.
    Returns NaN when the profile does not fall to half maximum on both sides (widen the profile).
    Pass linear intensities (envelope), not dB, for the classical -6 dB two-way width.
    """
    p = _arr(profile, "profile")
    if p.ndim != 1 or p.size < 3:
        raise ValueError(f"profile must be 1-D with >= 3 samples, found shape {p.shape}")
    if not spacing > 0:
        raise ValueError(f"spacing must be > 0, found {spacing}")
    i = int(np.argmax(p))
    base = float(p.min()) if baseline is None else float(baseline)
    if p[i] <= base:
        return math.nan
    half = base + (p[i] - base) / 2
    left = np.nonzero(p[: i + 1] <= half)[0]
    right = np.nonzero(p[i:] <= half)[0]
    if left.size == 0 or right.size == 0:
        return math.nan
    l0 = int(left[-1])  # last sample <= half on the left; l0 + 1 is above
    r1 = i + int(right[0])  # first sample <= half on the right; r1 - 1 is above
    xl = l0 + (half - p[l0]) / (p[l0 + 1] - p[l0])
    xr = r1 - 1 + (p[r1 - 1] - half) / (p[r1 - 1] - p[r1])
    return float((xr - xl) * spacing)


def point_fwhm(image, spacing: float | tuple[float, float] = 1.0, *, peak: tuple[int, int] | None = None,
               baseline: float | None = 0.0) -> tuple[float, float]:
    """Axial and lateral FWHM of a point target in an (H, W) image (rows = depth): ``(axial, lateral)``.

    The profiles are the column (axial) and row (lateral) through ``peak`` (default: the brightest pixel);
    ``spacing`` is the pixel size, a float or (axial, lateral), e.g. in mm. See :func:`fwhm`.
    """
    a = _image2d(image, "image")
    sz, sx = (spacing, spacing) if np.isscalar(spacing) else tuple(spacing)
    if peak is None:
        r, c = np.unravel_index(int(np.argmax(a)), a.shape)
    else:
        r, c = peak
        if not (0 <= r < a.shape[0] and 0 <= c < a.shape[1]):
            raise ValueError(f"peak {peak} is outside the {a.shape[0]}x{a.shape[1]} image")
    return fwhm(a[:, c], sz, baseline=baseline), fwhm(a[r, :], sx, baseline=baseline)


def peak_edge_gradient(x, *, spacing: float = 1.0, axis: int = -1) -> float:
    """Largest absolute intensity gradient (per unit of ``spacing``) across an edge.

    ``x`` is a 1-D profile across the edge or an image whose edge crosses ``axis`` (-1: lateral, columns;
    -2: axial, rows). The gradient is ``np.gradient`` (central differences inside, one-sided at the ends),
    so an ideal one-sample step of height h scores h / 2 and a ramp of slope s scores s.
    """
    a = _arr(x, "x")
    if a.shape[axis] < 2:
        raise ValueError(f"need >= 2 samples along axis {axis}, found shape {a.shape}")
    if not spacing > 0:
        raise ValueError(f"spacing must be > 0, found {spacing}")
    return float(np.abs(np.gradient(a, spacing, axis=axis)).max())
