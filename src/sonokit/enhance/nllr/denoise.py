"""NLLR denoising end to end: low-rank passes with WNNM's iterative regularisation, then optional
collaborative Wiener passes (:func:`nllr_denoise`), and :class:`NLLRDenoiser`, which holds its options."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .groups import aggregate_groups, gather_groups
from .lowrank import THRESHOLDS, noise_threshold, svd_threshold
from .matching import block_match
from .sigma import estimate_noise_sigma
from .wiener import collaborative_wiener

WEIGHTINGS = ("uniform", "rank")


def _nllr_pass(y: torch.Tensor, sigma: float, *, patch: int, stride: int, search: int, k: int, c: float,
               threshold: str, weighting: str) -> torch.Tensor:
    """One block-match / low-rank / aggregate pass on an (H, W) float32 image."""
    H, W = y.shape
    p = patch
    refs, corners = block_match(y, patch=p, stride=stride, search=search, k=k)  # (N, 2), (N, k, 2)
    N = corners.shape[0]
    mat = gather_groups(y, corners, p).reshape(N, k, p * p).transpose(1, 2)  # (N, p*p, k): one patch per column
    den, rank = svd_threshold(mat, noise_threshold(sigma, patch=p, k=k, c=c), mode=threshold)
    est = den.transpose(1, 2).reshape(N, k, p, p)  # (N, k, p, p)
    w = torch.ones(N, device=y.device) if weighting == "uniform" else 1.0 / (1.0 + rank.float())
    return aggregate_groups(est, corners, w, shape=(H, W), fallback=y)


# a guide's default share of the Wiener pilot: chosen on the 8 tuning frames of benchmarks/nllr_vs_bm3d.py
# (BUSI, σ = 25/255, DRUNet-small Gaussian denoiser as the guide), which that benchmark excludes
GUIDE_WEIGHT = 0.4


def nllr_denoise(image: torch.Tensor | np.ndarray, *, sigma: float | None = None, patch: int = 8,
                 stride: int = 4, search: int = 10, k: int = 16, c: float = 1.0, threshold: str = "hard",
                 weighting: str = "rank", iterations: int = 2, delta: float = 0.1,
                 gamma: float = 0.67, wiener: int = 0, wiener_stride: int = 4, wiener_search: int = 8,
                 wiener_k: int = 16, guide: torch.Tensor | np.ndarray | None = None,
                 guide_weight: float = GUIDE_WEIGHT) -> torch.Tensor | np.ndarray:
    """Non-local low-rank denoising of a single image (see the module docstring for the method).

    Args:
        image: (H, W) NumPy array or torch tensor, or a (B, 1, H, W) tensor (images done one by one).
        sigma: noise std in image intensity units; ``None``: estimated per image (:func:`estimate_noise_sigma`).
        patch: patch side p (pixels). stride: reference-patch step (1 <= stride <= patch).
        search: half-width of the block-matching window (pixels). k: patches per group.
        c: threshold constant in ``τ = c σ (p + sqrt(k))``. threshold: ``hard`` | ``soft``.
        weighting: aggregation weights, ``uniform`` | ``rank`` (``1 / (1 + kept rank)``).
        iterations: passes; passes after the first use WNNM's iterative regularisation with ``delta`` and
            ``gamma``.
        wiener: passes of :func:`collaborative_wiener` after the low-rank passes, each guided by the
            estimate before it (0: none); ``wiener_stride``, ``wiener_search`` and ``wiener_k`` are its
            block-matching settings. One pass after a single low-rank pass is the two-step scheme of BM3D
            with NLLR as the first step (``classical`` method ``nllr_wiener``).
        guide: another estimate of the same clean image (same shape as ``image``), e.g. a trained
            denoising network's output (:mod:`sonokit.enhance.hybrid`). Needs ``wiener >= 1``: the first
            Wiener pass is then guided by the blend ``(1 - guide_weight) · NLLR + guide_weight · guide``
            instead of the NLLR estimate alone (two estimators with different errors average to a better
            pilot; the noisy image is still the only thing the Wiener step filters).
        guide_weight: the guide's share of that pilot, in [0, 1].

    Returns:
        the denoised image, same shape and type (NumPy in, NumPy out) as ``image``.
    """
    for name, v, lo in (("patch", patch, 2), ("stride", stride, 1), ("k", k, 1), ("iterations", iterations, 1),
                        ("search", search, 0), ("wiener", wiener, 0), ("wiener_stride", wiener_stride, 1),
                        ("wiener_search", wiener_search, 0), ("wiener_k", wiener_k, 1)):
        if not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, found {v!r}")
    if max(stride, wiener_stride if wiener else 1) > patch:
        raise ValueError(f"stride {max(stride, wiener_stride)} > patch {patch} would leave pixels uncovered; "
                         "expected stride (and wiener_stride) <= patch")
    if sigma is not None and not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be >= 0 (or None to estimate it), found {sigma}")
    if not (math.isfinite(c) and c > 0):
        raise ValueError(f"c must be > 0, found {c}")
    if threshold not in THRESHOLDS:
        raise ValueError(f"threshold must be one of {list(THRESHOLDS)}, found {threshold!r}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {list(WEIGHTINGS)}, found {weighting!r}")
    if not (math.isfinite(guide_weight) and 0 <= guide_weight <= 1):
        raise ValueError(f"guide_weight must be in [0, 1], found {guide_weight}")
    if guide is not None and wiener < 1:
        raise ValueError("a guide blends into the pilot of the collaborative Wiener step; it needs wiener >= 1, "
                         f"found wiener={wiener}")
    is_np = isinstance(image, np.ndarray)
    x = torch.from_numpy(np.ascontiguousarray(image)) if is_np else image
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"image must be a NumPy array or torch tensor, found {type(image).__name__}")
    if x.ndim == 4 and x.shape[1] == 1 and not is_np:
        if guide is not None and tuple(guide.shape) != tuple(x.shape):
            raise ValueError(f"guide must have the images' shape {tuple(x.shape)}, found {tuple(guide.shape)}")
        return torch.stack([nllr_denoise(xi[0], sigma=sigma, patch=patch, stride=stride, search=search, k=k, c=c,
                                         threshold=threshold, weighting=weighting, iterations=iterations,
                                         delta=delta, gamma=gamma, wiener=wiener, wiener_stride=wiener_stride,
                                         wiener_search=wiener_search, wiener_k=wiener_k,
                                         guide=None if guide is None else guide[i, 0],
                                         guide_weight=guide_weight) for i, xi in enumerate(x)])[:, None]
    if x.ndim != 2:
        raise ValueError(f"image must be (H, W) (or a (B, 1, H, W) tensor), found shape {tuple(x.shape)}")
    H, W = x.shape
    if min(H, W) < patch:
        raise ValueError(f"patch {patch} is larger than the {H}x{W} image; expected patch <= min(H, W)")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"image has {int((~torch.isfinite(x)).sum())} NaN/Inf pixel(s); expected finite values")
    # every reference must have k valid candidates, also in a corner of the search window
    for name, kk, rr in (("k", k, search), ("wiener_k", wiener_k if wiener else 1, wiener_search)):
        kmax = (min(rr, H - patch) + 1) * (min(rr, W - patch) + 1)
        if kk > kmax:
            raise ValueError(f"{name}={kk} exceeds the {kmax} candidates of a corner search window "
                             f"(search={rr}, patch={patch}, image {H}x{W}); lower {name} or raise its search")
    if guide is not None:
        g = torch.as_tensor(np.ascontiguousarray(guide) if isinstance(guide, np.ndarray) else guide)
        if tuple(g.shape) != (H, W):
            raise ValueError(f"guide must have the image's shape {(H, W)}, found {tuple(g.shape)}")
        if not bool(torch.isfinite(g).all()):
            raise ValueError(f"guide has {int((~torch.isfinite(g)).sum())} NaN/Inf pixel(s); expected finite values")
        guide = g.detach().float().to(x.device)
    y = x.detach().float()
    s0 = estimate_noise_sigma(y) if sigma is None else float(sigma)
    opts = dict(patch=patch, stride=stride, search=search, k=k, c=c, threshold=threshold, weighting=weighting)
    est = _nllr_pass(y, s0, **opts)
    for _ in range(iterations - 1):
        resid = float(((y - est) ** 2).mean())
        s_t = gamma * math.sqrt(max(s0**2 - resid, 0.0))
        est = _nllr_pass(est + delta * (y - est), s_t, **opts)
    for t in range(wiener):
        pilot = est if guide is None or t else (1 - guide_weight) * est + guide_weight * guide
        est = collaborative_wiener(y, pilot, s0, patch=patch, stride=wiener_stride, search=wiener_search, k=wiener_k)
    out = est.to(x.dtype) if torch.is_floating_point(x) else est
    return out.cpu().numpy() if is_np else out


@dataclass
class NLLRDenoiser:
    """Callable holding the NLLR hyper-parameters: ``NLLRDenoiser(patch=8)(image, sigma=None)``.

    See :func:`nllr_denoise` for the arguments.
    """

    patch: int = 8
    stride: int = 4
    search: int = 10
    k: int = 16
    c: float = 1.0
    threshold: str = "hard"
    weighting: str = "rank"
    iterations: int = 2
    wiener: int = 0
    wiener_stride: int = 4
    wiener_search: int = 8
    wiener_k: int = 16
    guide_weight: float = GUIDE_WEIGHT

    def __post_init__(self) -> None:
        if self.threshold not in THRESHOLDS:
            raise ValueError(f"threshold must be one of {list(THRESHOLDS)}, found {self.threshold!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {list(WEIGHTINGS)}, found {self.weighting!r}")
        if self.stride > self.patch or min(self.patch, self.stride, self.k, self.iterations) < 1 or self.search < 0:
            raise ValueError(f"expected 1 <= stride <= patch, k >= 1, iterations >= 1, search >= 0; found {self}")
        if not self.c > 0:
            raise ValueError(f"c must be > 0, found {self.c}")
        if not 0 <= self.guide_weight <= 1:
            raise ValueError(f"guide_weight must be in [0, 1], found {self.guide_weight}")
        if self.wiener < 0 or (self.wiener and (not 1 <= self.wiener_stride <= self.patch or self.wiener_k < 1
                                                or self.wiener_search < 0)):
            raise ValueError(f"expected wiener >= 0 and, with wiener, 1 <= wiener_stride <= patch, wiener_k >= 1, "
                             f"wiener_search >= 0; found {self}")

    def __call__(self, image: torch.Tensor | np.ndarray, sigma: float | None = None, guide=None):
        return nllr_denoise(image, sigma=sigma, patch=self.patch, stride=self.stride, search=self.search, k=self.k,
                            c=self.c, threshold=self.threshold, weighting=self.weighting, iterations=self.iterations,
                            wiener=self.wiener, wiener_stride=self.wiener_stride, wiener_search=self.wiener_search,
                            wiener_k=self.wiener_k, guide=guide, guide_weight=self.guide_weight)
