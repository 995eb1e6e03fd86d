"""How useful a model's uncertainty map is: does it point at the pixels the model gets wrong?

For a model that returns an ``uncertainty`` map beside its mask before correction (SF-RecSAM with a corrector:
``initial`` and ``uncertainty`` of :data:`sonokit.inference.segmenter.EXTRA_OUTPUTS`; a model without
``initial`` is scored on its final mask), on every image of a labelled set at its original size:

* **pixel AUROC**: how well the uncertainty ranks the wrong pixels of the initial mask (prediction != ground
  truth) above the right ones, pooled over all pixels of all images (a histogram of ``bins`` uncertainty levels,
  ties counted half, as the Mann-Whitney statistic), and the mean of the per-image AUROCs (images with wrong and
  right pixels). Beside it the same for the **probability margin** ``1 - |2 p0 - 1|`` of the initial mask, the
  uncertainty any segmentation model has for free: the MC uncertainty is only worth its T passes if it beats it;
* **oracle correction**: each image's ``budget`` fraction of most uncertain pixels set to the ground truth, the
  mean Dice before and after, for the uncertainty and for the margin ranking with the same budget (and for
  ``u >= 0.5``, whatever fraction that flags): the Dice gain that correcting only uncertain pixels can buy, and
  so the ceiling of any corrector fed by this map;
* the **corrector's own** mean Dice (the model's final mask) beside the initial one.

All Dice values follow sonokit's empty-mask rule (:mod:`sonokit.metrics.segmentation`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..data import open_dataset
from ..errors import ConfigError, DataError
from .segment import labelled_batches

BUDGETS = (0.01, 0.02, 0.05, 0.1)


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two boolean masks; 1 when both are empty."""
    s = int(pred.sum()) + int(gt.sum())
    return 1.0 if s == 0 else 2.0 * int((pred & gt).sum()) / s


def auroc_from_hist(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUROC of a score binned into levels, from the counts of positives / negatives per level (ascending):
    P(score of a positive > score of a negative) + 0.5 P(equal). NaN without positives or negatives."""
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])  # negatives at lower levels
    return float((pos * (below + 0.5 * neg)).sum() / (n_pos * n_neg))


def levels(score: np.ndarray, bins: int) -> np.ndarray:
    """A score in [0, 1] -> integer levels 0 .. bins - 1."""
    return np.clip((np.asarray(score, dtype=np.float64) * bins).astype(np.int64), 0, bins - 1)


def oracle(initial: np.ndarray, gt: np.ndarray, score: np.ndarray, budget: float) -> tuple[np.ndarray, int]:
    """``initial`` with its ``budget`` fraction of highest-``score`` pixels set to ``gt``; and their count."""
    k = int(round(budget * score.size))
    out = initial.copy()
    if k > 0:
        top = np.argpartition(score.ravel(), score.size - k)[score.size - k:]
        out.ravel()[top] = gt.ravel()[top]
    return out, k


class _Tally:
    """Running pooled histograms and per-image values for one score."""

    def __init__(self, bins: int) -> None:
        self.bins, self.pos, self.neg = bins, np.zeros(bins), np.zeros(bins)
        self.per_image: list[float] = []
        self.oracle: dict[float, list[float]] = {}

    def add(self, score: np.ndarray, wrong: np.ndarray, initial: np.ndarray, gt: np.ndarray,
            budgets: tuple[float, ...]) -> None:
        lv = levels(score, self.bins)
        pos = np.bincount(lv[wrong], minlength=self.bins)
        neg = np.bincount(lv[~wrong], minlength=self.bins)
        self.pos += pos
        self.neg += neg
        self.per_image.append(auroc_from_hist(pos, neg))
        for b in budgets:
            self.oracle.setdefault(b, []).append(dice(oracle(initial, gt, score, b)[0], gt))

    def summary(self) -> dict:
        per = np.array(self.per_image)
        per = per[np.isfinite(per)]
        return {"pixel_auroc": auroc_from_hist(self.pos, self.neg),
                "image_auroc_mean": float(per.mean()) if per.size else float("nan"), "images_with_auroc": int(per.size),
                "oracle_dice": {f"{b:g}": float(np.mean(v)) for b, v in self.oracle.items()}}


def uncertainty_calibration(segmenter, *, data_root: str | Path, data_format: str | None, ids: list[str] | None,
                            budgets: tuple[float, ...] = BUDGETS, bins: int = 1000, batch_size: int = 8,
                            threshold: float = 0.5,
                            progress: Callable[[int, int], None] | None = None) -> dict:
    """Score ``segmenter``'s uncertainty on the labelled images ``ids`` of ``data_root`` (module docstring)."""
    reader = open_dataset(data_root, data_format)
    ids = ids if ids is not None else reader.ids
    unc, margin = _Tally(bins), _Tally(bins)
    initial_dice, final_dice, flagged, thresh_dice, wrong_frac = [], [], [], [], []
    skipped, has_initial = [], None
    for batch in labelled_batches(reader, ids, batch_size, skipped, progress):
        for s, mp in zip(batch, segmenter.predict_maps([s.image for s in batch])):
            if "uncertainty" not in mp:
                raise ConfigError("the model returns no uncertainty map; calibration needs a model with one (e.g. "
                                  "sfrecsam with model.corrector dual / fp / fn and model.mc_samples > 0)")
            has_initial = "initial" in mp
            gt = s.mask[0].astype(bool)
            p0 = mp.get("initial", mp["prob"])
            initial = p0 >= threshold
            wrong = initial != gt
            u = mp["uncertainty"]
            unc.add(u, wrong, initial, gt, budgets)
            margin.add(1.0 - np.abs(2.0 * p0 - 1.0), wrong, initial, gt, budgets)
            initial_dice.append(dice(initial, gt))
            final_dice.append(dice(mp["prob"] >= threshold, gt))
            sel = u >= 0.5
            flagged.append(float(sel.mean()))
            thresh_dice.append(dice(np.where(sel, gt, initial), gt))
            wrong_frac.append(float(wrong.mean()))
    if progress:
        progress(len(ids), len(ids))
    if not initial_dice:
        raise DataError(f"no sample of '{data_root}' could be scored ({len(skipped)} skipped)")
    return {"n": len(initial_dice), "skipped": skipped, "initial_from": "initial" if has_initial else "prob",
            "wrong_pixel_fraction": float(np.mean(wrong_frac)),
            "initial_dice": float(np.mean(initial_dice)), "final_dice": float(np.mean(final_dice)),
            "uncertainty": unc.summary(), "margin": margin.summary(),
            "u_at_least_half": {"flagged_fraction": float(np.mean(flagged)), "oracle_dice": float(np.mean(thresh_dice))},
            "budgets": list(budgets), "bins": bins, "threshold": threshold}
