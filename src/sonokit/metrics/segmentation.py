"""Per-image binary segmentation metrics and their aggregation.

Empty-mask rule (documented, tested): when ground truth and prediction are both empty, the prediction is
perfect: Dice = IoU = precision = recall = 1 and HD95 = 0. When exactly one of them is empty, the
overlap metrics are 0 (a missed lesion or a false alarm is a failure, never "undefined") and HD95 is
undefined (NaN); aggregates report HD95 over images where it is defined and count the others.

HD95 is the 95th percentile of the symmetric surface distances (MONAI's ``compute_hausdorff_distance``),
in mm when the pixel spacing is known, else in pixels.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from monai.metrics import compute_hausdorff_distance

METRICS = ("dice", "iou", "precision", "recall", "hd95")


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, float] | None = None) -> float:
    """95th-percentile Hausdorff distance between the boundaries of two non-empty (H, W) masks."""
    p = torch.from_numpy(np.ascontiguousarray(pred, dtype=np.float32))[None, None]
    g = torch.from_numpy(np.ascontiguousarray(gt, dtype=np.float32))[None, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # MONAI 1.5+ deprecation notice inside get_mask_edges
        d = compute_hausdorff_distance(p, g, include_background=True, percentile=95,
                                       spacing=list(spacing) if spacing else None)
    return float(d.item())


def binary_overlap(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """Dice, IoU, precision and recall per image of boolean masks (B, ...) -> {metric: (B,) float64}.

    The one overlap implementation of sonokit (training validation and evaluation both call it), with the
    empty-mask rule above: both empty -> 1, exactly one empty -> 0.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction is {tuple(pred.shape)} but ground truth is {tuple(gt.shape)}; expected equal shapes")
    p, g = pred.reshape(pred.shape[0], -1).bool(), gt.reshape(gt.shape[0], -1).bool()
    tp = (p & g).sum(1).double()
    fp = (p & ~g).sum(1).double()
    fn = (~p & g).sum(1).double()
    p_empty, g_empty = tp + fp == 0, tp + fn == 0
    both, one = p_empty & g_empty, p_empty ^ g_empty
    out = {"dice": 2 * tp / (2 * tp + fp + fn), "iou": tp / (tp + fp + fn), "precision": tp / (tp + fp),
           "recall": tp / (tp + fn)}
    return {k: torch.where(both, torch.ones_like(v), torch.where(one, torch.zeros_like(v), v)) for k, v in out.items()}


def segmentation_metrics(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, float] | None = None) -> dict[str, float]:
    """Dice, IoU, precision, recall and HD95 of boolean (H, W) masks (see the empty-mask rule above)."""
    pred = np.asarray(pred).astype(bool).reshape(np.asarray(pred).shape[-2:])
    gt = np.asarray(gt).astype(bool).reshape(np.asarray(gt).shape[-2:])
    if pred.shape != gt.shape:
        raise ValueError(f"prediction is {pred.shape} but ground truth is {gt.shape}; expected equal shapes")
    m = {k: float(v[0]) for k, v in binary_overlap(torch.from_numpy(pred)[None], torch.from_numpy(gt)[None]).items()}
    if not pred.any() and not gt.any():
        return {**m, "hd95": 0.0}
    if not pred.any() or not gt.any():
        return {**m, "hd95": math.nan}
    return {**m, "hd95": hd95(pred, gt, spacing)}


def aggregate(rows: list[dict[str, float]], keys: tuple[str, ...] = METRICS) -> dict[str, dict[str, float]]:
    """{metric: {"mean", "std", "n"}} over rows, ignoring NaN (std is the sample std, ddof=1)."""
    out = {}
    for k in keys:
        v = np.array([r[k] for r in rows if k in r and not math.isnan(r[k])], dtype=np.float64)
        out[k] = {
            "mean": float(v.mean()) if v.size else math.nan,
            "std": float(v.std(ddof=1)) if v.size > 1 else 0.0 if v.size else math.nan,
            "n": int(v.size),
        }
    return out
