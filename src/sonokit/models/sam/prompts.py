"""Automatic prompts for SAM from a coarse mask: no click anywhere (SF-RecSAM: "bounding boxes obtained from
rough segmentation results").

Coordinates are input-image pixels, SAM's convention: a box is ``(x0, y0, x1, y1)`` with inclusive pixel
indices (``torchvision.ops.masks_to_boxes``), a point is ``(x, y)``. The steps, each a pure function:

1. :func:`mask_boxes` — the box of a binary mask (B, H, W): of its **largest 8-connected component**
   (``component="largest"``, the default: a spurious blob of the coarse mask then does not blow the box up to
   the whole image) or of **all** foreground pixels (``"all"``). A mask with no foreground gets the
   **fallback box**: centred, its side a quarter of the image side (a lesion-sized guess where lesions
   usually are; SF-RecSAM's code uses a fixed 40 px box at the centre of its 256 px images).
2. :func:`scale_boxes` — scaled about the centre (``scale=1.3``: the SF-RecSAM code's margin), clipped to
   the image. The fallback box is not scaled.
3. :func:`jitter_boxes` (training only) — every coordinate moved by ``U(-amount, amount)`` x the box's side
   (width for x, height for y), drawn from a ``torch.Generator`` (or the global generator), then ordered and
   clipped: the same generator state gives the same boxes.
4. :func:`centroid_points` (optional point prompt) — one positive point at the centroid of the same pixels
   (it may fall outside a non-convex component); an empty mask gives label -1 (SAM's "not a point").

Connected components are labelled with ``scipy.ndimage.label`` on the CPU (the boxes carry no gradient).
"""
from __future__ import annotations

import numpy as np
import torch

from ...errors import ConfigError

COMPONENTS = ("largest", "all")
FALLBACK_FRACTION = 0.25  # side of the empty-mask box / image side


def largest_component(mask: torch.Tensor) -> torch.Tensor:
    """The largest 8-connected foreground component of each mask (B, H, W) bool -> (B, H, W) bool.

    Ties go to the component found first in raster order."""
    from scipy import ndimage

    m = mask.detach().bool().cpu().numpy()
    out = np.zeros_like(m)
    eight = np.ones((3, 3), dtype=bool)
    for i in range(m.shape[0]):
        lab, n = ndimage.label(m[i], structure=eight)
        if n:
            sizes = np.bincount(lab.ravel())[1:]
            out[i] = lab == int(np.argmax(sizes)) + 1
    return torch.from_numpy(out).to(mask.device)


def select_pixels(mask: torch.Tensor, component: str = "largest") -> torch.Tensor:
    """The pixels a prompt is made from: (B, H, W) -> (B, H, W) bool (largest component or all foreground)."""
    if component not in COMPONENTS:
        raise ConfigError(f"box component must be one of {', '.join(COMPONENTS)}; found {component!r}")
    m = mask.bool()
    return largest_component(m) if component == "largest" else m


def fallback_boxes(n: int, size: tuple[int, int], device=None) -> torch.Tensor:
    """``n`` centred boxes of side ``FALLBACK_FRACTION`` x the image side: (n, 4) float."""
    H, W = size
    cx, cy, hw, hh = (W - 1) / 2, (H - 1) / 2, FALLBACK_FRACTION * W / 2, FALLBACK_FRACTION * H / 2
    return torch.tensor([cx - hw, cy - hh, cx + hw, cy + hh], device=device).repeat(n, 1)


def mask_boxes(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive boxes (B, 4) float ``x0, y0, x1, y1`` of the foreground of (B, H, W) masks, and which masks had
    any (B,) bool; empty masks get :func:`fallback_boxes`."""
    B, H, W = mask.shape
    m = mask.bool()
    found = m.flatten(1).any(1)
    ys = torch.arange(H, device=m.device, dtype=torch.float32).view(1, H, 1)
    xs = torch.arange(W, device=m.device, dtype=torch.float32).view(1, 1, W)
    big = float(max(H, W))
    x0 = torch.where(m, xs, big).flatten(1).min(1).values
    y0 = torch.where(m, ys, big).flatten(1).min(1).values
    x1 = torch.where(m, xs, -1.0).flatten(1).max(1).values
    y1 = torch.where(m, ys, -1.0).flatten(1).max(1).values
    boxes = torch.stack([x0, y0, x1, y1], 1)
    return torch.where(found[:, None], boxes, fallback_boxes(B, (H, W), m.device)), found


def clip_boxes(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Order each box's corners and clip them to ``[0, W - 1] x [0, H - 1]``: (B, 4) -> (B, 4)."""
    H, W = size
    x0, x1 = torch.minimum(boxes[:, 0], boxes[:, 2]), torch.maximum(boxes[:, 0], boxes[:, 2])
    y0, y1 = torch.minimum(boxes[:, 1], boxes[:, 3]), torch.maximum(boxes[:, 1], boxes[:, 3])
    return torch.stack([x0.clamp(0, W - 1), y0.clamp(0, H - 1), x1.clamp(0, W - 1), y1.clamp(0, H - 1)], 1)


def scale_boxes(boxes: torch.Tensor, scale: float, size: tuple[int, int]) -> torch.Tensor:
    """Boxes (B, 4) scaled by ``scale`` about their centres, then clipped to the image (``size`` = (H, W))."""
    c = (boxes[:, :2] + boxes[:, 2:]) / 2  # (B, 2) centres
    half = (boxes[:, 2:] - boxes[:, :2]) / 2 * scale  # (B, 2) half sides
    return clip_boxes(torch.cat([c - half, c + half], 1), size)


def jitter_boxes(boxes: torch.Tensor, amount: float, size: tuple[int, int],
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Every coordinate moved by ``U(-amount, amount)`` x the box's width (x) or height (y), drawn on the CPU
    from ``generator`` (the global generator when None), then ordered and clipped. (B, 4) -> (B, 4)."""
    if amount <= 0:
        return boxes
    B = boxes.shape[0]
    u = torch.rand(B, 4, generator=generator) * 2 - 1  # (B, 4) in [-1, 1)
    side = (boxes[:, 2:] - boxes[:, :2]).clamp_min(1.0).repeat(1, 2)  # (B, 4): w, h, w, h
    return clip_boxes(boxes + amount * side * u.to(boxes.device, boxes.dtype), size)


def centroid_points(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One point per mask (B, H, W): coordinates (B, 1, 2) ``x, y`` at the foreground's centroid, and labels
    (B, 1): 1, or -1 (ignored by SAM) for an empty mask (its point is then the image centre)."""
    B, H, W = mask.shape
    m = mask.float()
    n = m.flatten(1).sum(1)  # (B,)
    ys = torch.arange(H, device=m.device, dtype=torch.float32).view(1, H, 1)
    xs = torch.arange(W, device=m.device, dtype=torch.float32).view(1, 1, W)
    cx = (m * xs).flatten(1).sum(1) / n.clamp_min(1)
    cy = (m * ys).flatten(1).sum(1) / n.clamp_min(1)
    found = n > 0
    cx = torch.where(found, cx, torch.full_like(cx, (W - 1) / 2))
    cy = torch.where(found, cy, torch.full_like(cy, (H - 1) / 2))
    labels = torch.where(found, 1, -1).long().unsqueeze(1)  # (B, 1)
    return torch.stack([cx, cy], 1).unsqueeze(1), labels


def auto_box(mask: torch.Tensor, *, scale: float = 1.3, component: str = "largest", jitter: float = 0.0,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 1-3 of the module docstring on binary masks (B, H, W): ``(boxes (B, 4), pixels (B, H, W))``,
    ``pixels`` being what the box was drawn around (for :func:`centroid_points`)."""
    size = tuple(mask.shape[-2:])
    pixels = select_pixels(mask, component)
    boxes, found = mask_boxes(pixels)
    boxes = torch.where(found[:, None], scale_boxes(boxes, scale, size), boxes)
    return jitter_boxes(boxes, jitter, size, generator), pixels
