"""Noise level estimation for additive white Gaussian noise (Donoho's MAD rule on the Haar HH band)."""
from __future__ import annotations

import numpy as np
import torch


def estimate_noise_sigma(image: torch.Tensor | np.ndarray) -> float:
    """Std of additive white Gaussian noise in an (H, W) image: ``median(|HH|) / 0.6745``.

    ``HH = (a - b - c + d) / 2`` over non-overlapping 2 × 2 blocks is the orthonormal Haar diagonal
    detail band, which holds mostly noise (Donoho & Johnstone 1994).
    """
    x = torch.as_tensor(np.asarray(image) if isinstance(image, np.ndarray) else image).double()
    if x.ndim != 2 or min(x.shape) < 2:
        raise ValueError(f"estimate_noise_sigma expects an (H, W) image with H, W >= 2, found {tuple(x.shape)}")
    H, W = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    x = x[:H, :W]
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2  # (H/2, W/2)
    return float(hh.abs().median() / 0.6745)
