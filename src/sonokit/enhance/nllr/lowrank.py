"""The low-rank step: hard / soft singular-value thresholding of each group matrix at the noise bulk edge."""
from __future__ import annotations

import math

import torch

THRESHOLDS = ("hard", "soft")


def noise_threshold(sigma: float, *, patch: int, k: int, c: float = 1.0) -> float:
    """Singular-value threshold ``τ = c σ (sqrt(patch²) + sqrt(k))`` for a (patch², k) group matrix."""
    return c * sigma * (patch + math.sqrt(k))


def svd_threshold(groups: torch.Tensor, tau: float, *, mode: str = "hard",
                  method: str = "gram") -> tuple[torch.Tensor, torch.Tensor]:
    """Low-rank estimate of each group matrix: (N, m, k) -> (denoised (N, m, k), kept rank (N,)).

    The row mean over the k columns is kept; the centred matrix ``Y_c = U Σ Vᵀ`` becomes
    ``U φ(Σ) Vᵀ`` with ``φ`` the hard (``σ · 1[σ > τ]``) or soft (``max(σ - τ, 0)``) threshold at ``tau``.

    ``method="svd"`` calls the batched ``torch.linalg.svd``. ``method="gram"`` (default) gets the same
    decomposition from the k × k Gram matrix, ``Y_cᵀ Y_c = V Σ² Vᵀ`` (batched ``torch.linalg.eigh`` in
    float64), and forms ``U φ(Σ) Vᵀ = Y_c V diag(φ(σ) / σ) Vᵀ``: identical up to round-off for k <= m and
    about 10x faster on CPU for 64 × 16 groups.
    """
    if mode not in THRESHOLDS:
        raise ValueError(f"threshold must be one of {list(THRESHOLDS)}, found {mode!r}")
    if method not in ("gram", "svd"):
        raise ValueError(f"method must be 'gram' or 'svd', found {method!r}")
    mu = groups.mean(-1, keepdim=True)  # (N, m, 1)
    yc = groups - mu  # (N, m, k)
    if method == "svd":
        U, S, Vh = torch.linalg.svd(yc, full_matrices=False)  # (N, m, r), (N, r), (N, r, k)
        S2 = S * (S > tau) if mode == "hard" else (S - tau).clamp_min(0)
        return (U * S2[:, None, :]) @ Vh + mu, (S2 > 0).sum(-1)
    yd = yc.double()
    lam, V = torch.linalg.eigh(yd.transpose(1, 2) @ yd)  # (N, k), (N, k, k): Gram eigenpairs, ascending
    S = lam.clamp_min(0).sqrt()  # (N, k) singular values
    keep = S > tau
    gain = keep.double() if mode == "hard" else torch.where(keep, (S - tau) / S.clamp_min(1e-300), 0.0)  # φ(σ)/σ
    proj = (V * gain[:, None, :]) @ V.transpose(1, 2)  # (N, k, k) = V diag(φ/σ) Vᵀ
    return (yd @ proj).to(groups.dtype) + mu, keep.sum(-1)
