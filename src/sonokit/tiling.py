"""Tiled inference for images larger than a model should see at once (memory), crop-and-stitch.

The image is covered by tiles of ``tile`` pixels whose starts are ``tile - overlap`` apart (the last tile of
a row or column is moved back to end at the image border). Each output pixel is taken from ONE tile: the tile
in which it lies farthest from an inner tile edge, i.e. every tile contributes only its part that is at least
``overlap // 2`` pixels away from its inner edges. For any operator whose receptive-field radius is at most
``overlap // 2`` (and that is translation-equivariant on the tile grid, see ``multiple``), the stitched result
is therefore identical to running the operator on the whole image — including at the seams. For operators
with a larger receptive field (U-Nets, Swin blocks) it is identical wherever the receptive field fits and
differs only within the seam regions.

MONAI's ``sliding_window_inference`` blends overlapping tiles (constant or Gaussian weights); tile borders,
where each tile sees its own zero padding, then leak into the average, so its output is not identical to the
whole-image output even for a 3x3 convolution. Hence this small function.

``multiple``: tile starts and the padded image size are multiples of it, so that models with a fixed grid
(downsampling by 2^k, Swin windows) see every tile aligned with the whole-image grid.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F


def _starts(n: int, tile: int, step: int, multiple: int) -> list[int]:
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile, step)) + [n - tile]
    starts = sorted({(s // multiple) * multiple for s in starts})
    return starts


def _owner_bounds(starts: list[int], tile: int, n: int) -> list[tuple[int, int]]:
    """For each tile, the [lo, hi) range of output pixels it owns: split each overlap at its middle."""
    bounds = []
    for i, s in enumerate(starts):
        lo = 0 if i == 0 else (starts[i - 1] + tile + s) // 2  # middle of the overlap with the previous tile
        hi = n if i == len(starts) - 1 else (s + tile + starts[i + 1]) // 2
        bounds.append((lo, hi))
    return bounds


def tiled_apply(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, tile: int = 256, overlap: int = 64,
                multiple: int = 1, pad_mode: str = "reflect") -> torch.Tensor:
    """Apply ``fn`` ((B, C, h, w) -> (B, C', h, w)) to ``x`` (B, C, H, W) tile by tile; returns (B, C', H, W).

    Args:
        tile: tile side in pixels (a multiple of ``multiple``).
        overlap: overlap between neighbouring tiles in pixels (>= 0, < tile); each side of a seam uses
            ``overlap // 2`` pixels of context.
        multiple: the image is padded (``pad_mode``) to a multiple of this, and tile starts are multiples of it.
    """
    if x.ndim != 4:
        raise ValueError(f"tiled_apply expects (B, C, H, W), found shape {tuple(x.shape)}")
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"tile must be >= 1 and 0 <= overlap < tile; found tile={tile}, overlap={overlap}")
    if multiple < 1 or tile % multiple:
        raise ValueError(f"tile ({tile}) must be a multiple of multiple ({multiple})")
    if 0 < overlap < multiple:
        raise ValueError(f"overlap ({overlap}) must be 0 or >= multiple ({multiple}) so that tiles stay on the grid")
    B, C, H, W = x.shape
    Hp, Wp = math.ceil(H / multiple) * multiple, math.ceil(W / multiple) * multiple
    if (Hp, Wp) != (H, W):
        mode = pad_mode if (pad_mode != "reflect" or (Hp - H < H and Wp - W < W)) else "replicate"
        x = F.pad(x, (0, Wp - W, 0, Hp - H), mode=mode)
    th, tw = min(tile, Hp), min(tile, Wp)
    ys, xs = _starts(Hp, th, tile - overlap, multiple), _starts(Wp, tw, tile - overlap, multiple)
    out = None
    for (y0, (ylo, yhi)) in zip(ys, _owner_bounds(ys, th, Hp)):
        for (x0, (xlo, xhi)) in zip(xs, _owner_bounds(xs, tw, Wp)):
            y = fn(x[:, :, y0 : y0 + th, x0 : x0 + tw])  # (B, C', th, tw)
            if y.shape[-2:] != (th, tw):
                raise ValueError(f"the model returned {tuple(y.shape[-2:])} for a {th}x{tw} tile; expected the same size")
            if out is None:
                out = y.new_zeros((B, y.shape[1], Hp, Wp))
            out[:, :, ylo:yhi, xlo:xhi] = y[:, :, ylo - y0 : yhi - y0, xlo - x0 : xhi - x0]
    return out[:, :, :H, :W]
