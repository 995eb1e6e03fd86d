"""Aspect-preserving resize + pad to a square ("letterbox"), and its exact inverse for predictions."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Letterbox:
    """How an (H, W) image was placed into a ``size`` x ``size`` square: scaled by ``scale`` to
    (new_h, new_w) and padded with zeros, ``top`` rows above and ``left`` columns to the left."""

    size: int
    orig_h: int
    orig_w: int
    new_h: int
    new_w: int
    top: int
    left: int

    @classmethod
    def fit(cls, h: int, w: int, size: int) -> "Letterbox":
        if size < 8:
            raise ValueError(f"image_size must be at least 8 pixels, found {size}")
        scale = size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        return cls(size, h, w, nh, nw, (size - nh) // 2, (size - nw) // 2)

    def valid(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.new_h), slice(self.left, self.left + self.new_w)


def letterbox(x: torch.Tensor, size: int, *, is_mask: bool = False) -> tuple[torch.Tensor, Letterbox]:
    """(C, H, W) -> (C, size, size). Images: bilinear with antialiasing; masks: area-weighted then >= 0.5."""
    C, H, W = x.shape
    box = Letterbox.fit(H, W, size)
    xf = x.float()[None]  # (1, C, H, W)
    if (box.new_h, box.new_w) != (H, W):
        xf = F.interpolate(xf, size=(box.new_h, box.new_w), mode="bilinear", antialias=True, align_corners=False)
    if is_mask:
        xf = (xf >= 0.5).float()
    out = xf.new_zeros((1, C, size, size))
    rs, cs = box.valid()
    out[:, :, rs, cs] = xf
    return out[0], box


def unletterbox(y: torch.Tensor, box: Letterbox) -> torch.Tensor:
    """(C, size, size) prediction (probabilities or logits) -> (C, orig_h, orig_w), bilinear."""
    rs, cs = box.valid()
    crop = y[None, :, rs, cs].float()  # (1, C, new_h, new_w)
    if (box.new_h, box.new_w) == (box.orig_h, box.orig_w):
        return crop[0]
    return F.interpolate(crop, size=(box.orig_h, box.orig_w), mode="bilinear", align_corners=False)[0]
