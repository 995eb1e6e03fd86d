"""Patch groups as flat-index gathers: read the groups out of an image, and aggregate estimates back."""
from __future__ import annotations

import torch


def patch_index(corners: torch.Tensor, patch: int, width: int) -> torch.Tensor:
    """Flat pixel indices of the patches with top-left ``corners`` (N, k, 2) in a row-major image of
    ``width`` columns: (N, k, patch²)."""
    u = torch.arange(patch, device=corners.device)
    inner = (u[:, None] * width + u[None, :]).reshape(-1)  # (p*p,) offsets inside a patch
    return (corners[..., 0] * width + corners[..., 1])[..., None] + inner  # (N, k, p*p)


def gather_groups(image: torch.Tensor, corners: torch.Tensor, patch: int) -> torch.Tensor:
    """The patches of an (H, W) image at top-left ``corners`` (N, k, 2): (N, k, patch, patch)."""
    N, k = corners.shape[:2]
    idx = patch_index(corners, patch, image.shape[1])  # (N, k, p*p)
    return image.reshape(-1)[idx].reshape(N, k, patch, patch)


def aggregate_groups(patches: torch.Tensor, corners: torch.Tensor, weights: torch.Tensor, *,
                     shape: tuple[int, int], fallback: torch.Tensor,
                     window: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted average of overlapping patch estimates.

    ``patches`` (N, k, p, p), ``corners`` (N, k, 2) top-left (row, col), ``weights`` (N,) per group and an
    optional ``window`` (p, p) per pixel of a patch (BM3D's Kaiser window) -> (H, W) image; pixels that no
    patch covers take ``fallback`` (H, W).
    """
    N, k, p, _ = patches.shape
    H, W = shape
    dev = patches.device
    idx = patch_index(corners, p, W).reshape(-1)  # (N*k*p*p,)
    w = weights.to(patches.dtype)[:, None, None].expand(N, k, p * p)  # (N, k, p*p)
    if window is not None:
        w = w * window.to(patches.dtype).reshape(1, 1, p * p)
    num = torch.zeros(H * W, device=dev, dtype=patches.dtype).index_add_(0, idx, (patches.reshape(N, k, -1) * w).reshape(-1))
    den = torch.zeros(H * W, device=dev, dtype=patches.dtype).index_add_(0, idx, w.reshape(-1))
    out = torch.where(den > 0, num / den.clamp_min(1e-12), fallback.reshape(-1))
    return out.reshape(H, W)
