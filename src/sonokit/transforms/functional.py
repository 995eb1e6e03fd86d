"""Pure, batched tensor augmentations with explicit parameters (sampled separately, replayable)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def affine_matrices(angle_deg: torch.Tensor, scale: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor,
                    hflip: torch.Tensor, vflip: torch.Tensor) -> torch.Tensor:
    """(B,) parameters -> (B, 2, 3) matrices for ``F.affine_grid`` (normalised coordinates, output -> input)."""
    a = angle_deg * math.pi / 180.0
    cos, sin = torch.cos(a) / scale, torch.sin(a) / scale
    sx = torch.where(hflip, -1.0, 1.0).to(cos)
    sy = torch.where(vflip, -1.0, 1.0).to(cos)
    row0 = torch.stack([cos * sx, -sin * sy, tx], dim=-1)
    row1 = torch.stack([sin * sx, cos * sy, ty], dim=-1)
    return torch.stack([row0, row1], dim=1)  # (B, 2, 3)


def warp(x: torch.Tensor, theta: torch.Tensor, *, mode: str = "bilinear") -> torch.Tensor:
    """Apply (B, 2, 3) affine matrices to (B, C, H, W); outside the image is 0."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def adjust_intensity(x: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """x in [0, 1] (B, C, H, W) -> clamp(gain * x ** gamma + bias); parameters (B,)."""
    g = gamma.view(-1, 1, 1, 1)
    return (gain.view(-1, 1, 1, 1) * x.clamp_min(0).pow(g) + bias.view(-1, 1, 1, 1)).clamp(0.0, 1.0)
