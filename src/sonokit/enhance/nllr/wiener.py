"""Collaborative Wiener filtering (BM3D's second step), guided by a pilot estimate such as NLLR's."""
from __future__ import annotations

import math

import torch

from .groups import aggregate_groups, gather_groups
from .matching import block_match


def dct_matrix(n: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Orthonormal DCT-II matrix (n, n): ``coefficients = D @ signal``, ``signal = D.T @ coefficients``."""
    i = torch.arange(n, device=device, dtype=torch.float64)
    D = torch.cos(math.pi * (2 * i[None] + 1) * i[:, None] / (2 * n)) * math.sqrt(2 / n)  # (freq, sample)
    D[0] /= math.sqrt(2)
    return D.to(dtype)


def collaborative_wiener(y: torch.Tensor, pilot: torch.Tensor, sigma: float, *, patch: int = 8, stride: int = 3,
                         search: int = 12, k: int = 16, beta: float = 2.0) -> torch.Tensor:
    """Collaborative Wiener filtering of ``y`` guided by a ``pilot`` estimate: BM3D's second step.

    Dabov, Foi, Katkovnik & Egiazarian, "Image denoising by sparse 3-D transform-domain collaborative
    filtering", IEEE TIP 16(8), 2007, Sec. III-B. Patches are grouped by :func:`block_match` on the
    *pilot* (its noise is gone, so the matching is reliable); each group of the noisy image and the same
    group of the pilot go through a separable orthonormal 3-D DCT ``T`` (p × p in space, k along the
    group), the noisy spectrum is shrunk by the empirical Wiener gains

        W = |T(pilot group)|² / (|T(pilot group)|² + σ²)                                   (eq. 8)

    and transformed back. Estimates are aggregated with group weights ``1 / (σ² ‖W‖²)`` (eq. 11) times a
    2-D Kaiser window of shape ``beta`` (``beta = 0``: flat) over each patch.

    Args:
        y: (H, W) noisy image. pilot: (H, W) first estimate (e.g. one NLLR pass). sigma: noise std of ``y``.
        patch, stride, search, k: as in :func:`block_match`.

    Returns:
        (H, W) estimate.
    """
    if not sigma > 0:  # no noise: nothing to filter (and 0 / 0 gains where the pilot's spectrum is 0)
        return y.clone()
    H, W = y.shape
    p, dev = patch, y.device
    _, corners = block_match(pilot, patch=p, stride=stride, search=search, k=k)  # (N, k, 2)
    N = corners.shape[0]
    T2 = torch.kron(dct_matrix(p, device=dev), dct_matrix(p, device=dev))  # (p², p²) 2-D DCT on flat patches
    Tk = dct_matrix(k, device=dev)  # (k, k) 1-D DCT along the group

    def forward(img):  # (H, W) -> (N, k, p²) 3-D spectra of the groups
        g = gather_groups(img, corners, p).reshape(N, k, p * p) @ T2.T  # (N, k, p²) 2-D spectra
        return Tk @ g  # (N, k, p²): transform along the group axis

    spec_y, spec_p = forward(y), forward(pilot)
    gain = spec_p.square() / (spec_p.square() + sigma**2)  # (N, k, p²) Wiener gains (eq. 8)
    est = (Tk.T @ (gain * spec_y)) @ T2  # (N, k, p²) back to pixels
    weights = 1.0 / (sigma**2 * gain.square().sum((1, 2)) + 1e-12)  # (N,) eq. 11
    window = torch.kaiser_window(p, periodic=False, beta=beta, device=dev) if beta > 0 else torch.ones(p, device=dev)
    return aggregate_groups(est.reshape(N, k, p, p), corners, weights, shape=(H, W), fallback=y,
                            window=window[:, None] * window[None, :])
