"""Score a segmentation model on dataset samples at each image's ORIGINAL size; write rows + aggregates."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from ..data import open_dataset
from ..data.io import safe_name, write_map_png, write_png
from ..errors import DataError
from ..inference import Segmenter
from ..metrics import METRICS, aggregate, segmentation_metrics
from .output import write_evaluation

HC_METRICS = ("hc_mm", "hc_ref_mm", "hc_abs_err_mm", "hc_err_mm", "hc_mask_abs_err_mm")


def head_circumference_row(s, pred: np.ndarray) -> dict:
    """Head circumference of the predicted mask (:func:`sonokit.metrics.ellipse.head_circumference`) beside the
    dataset's reference (HC18: ``head_circumference_mm``) when the sample records one and its pixel spacing:
    ``hc_err_mm`` (predicted - reference), its absolute value (HC18's score), and ``hc_mask_abs_err_mm``, the same
    fit on the ground-truth mask (the measurement's own error, without the model)."""
    ref = (s.meta or {}).get("head_circumference_mm")
    if ref in (None, "") or s.spacing is None:
        return {}
    from ..metrics.ellipse import head_circumference

    ref = float(ref)
    hc = head_circumference(pred, s.spacing)
    return {"hc_mm": hc, "hc_ref_mm": ref, "hc_err_mm": hc - ref, "hc_abs_err_mm": abs(hc - ref),
            "hc_mask_abs_err_mm": abs(head_circumference(s.mask[0], s.spacing) - ref)}


def labelled_batches(reader, ids: list[str], batch_size: int, skipped: list[dict],
                     progress: Callable[[int, int], None] | None = None):
    """Batches (lists of samples) of ``ids`` that read and have a ground-truth mask; the others are appended to
    ``skipped`` as ``{id, error}``; ``progress(done, total)`` before each batch."""
    for start in range(0, len(ids), batch_size):
        if progress:
            progress(start, len(ids))
        batch = []
        for sid in ids[start : start + batch_size]:
            try:
                s = reader.get(sid)
            except DataError as e:
                skipped.append({"id": sid, "error": str(e)})
                continue
            if s.mask is None:
                skipped.append({"id": sid, "error": "no ground-truth mask"})
                continue
            batch.append(s)
        if batch:
            yield batch


def evaluate_segmentation(
    segmenter: Segmenter,
    *,
    data_root: str | Path,
    data_format: str | None,
    ids: list[str] | None,
    out_dir: str | Path | None = None,
    name: str = "test",
    batch_size: int = 8,
    save_predictions: bool = True,
    save_overlays: bool = False,
    save_uncertainty: bool = False,
    progress: Callable[[int, int], None] | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    extra: dict | None = None,
) -> dict:
    """Predict each sample, resize back to its original size, threshold, score against the original mask.

    Returns ``{"name", "n", "skipped", "aggregate": {metric: {mean, std, n}}, "rows": [...]}`` and, with
    ``out_dir``, writes ``<name>.json``, ``<name>_per_image.csv`` and predicted masks under ``<name>_pred/``;
    with ``save_overlays`` also ``<name>_overlays/<id>.png``: image | ground truth (green) | prediction (red)
    side by side (:func:`sonokit.reports.gallery.write_overlay`); with ``save_uncertainty`` the model's extra
    maps when it returns them (:data:`sonokit.inference.segmenter.EXTRA_OUTPUTS`), x 255 at original size, as
    ``<name>_uncertainty/<id>.png``, ``<name>_fp/<id>.png``, ``<name>_fn/<id>.png``, ``<name>_initial/<id>.png``.
    ``transform`` maps each (1, H, W) image to the (1, H, W) image the model sees (e.g. an enhancer run before
    segmentation); the mask and the metrics stay those of the original image.
    """
    reader = open_dataset(data_root, data_format)
    ids = ids if ids is not None else reader.ids
    rows, skipped = [], []
    out = Path(out_dir) if out_dir else None
    for batch in labelled_batches(reader, ids, batch_size, skipped, progress):
        seen = [s.image if transform is None else transform(s.image) for s in batch]
        if save_uncertainty and out is not None:  # the probability and the model's extra maps
            maps = segmenter.predict_maps(seen)
        else:
            maps = [{"prob": p} for p in segmenter.predict_batch(seen)]
        for s, mp in zip(batch, maps):
            pr = mp.pop("prob")
            pred = pr >= segmenter.threshold
            m = segmentation_metrics(pred, s.mask[0], s.spacing)
            rows.append({"id": s.id, "label": s.label or "", "height": s.size[0], "width": s.size[1],
                         "hd95_unit": "mm" if s.spacing else "px", "gt_area": int(s.mask.sum()),
                         "pred_area": int(pred.sum()), **m, **head_circumference_row(s, pred)})
            if out is not None and save_predictions:
                write_png(out / f"{name}_pred" / f"{safe_name(s.id)}.png", pred.astype(np.uint8))
            if out is not None and save_overlays:
                from ..reports.gallery import write_overlay

                write_overlay(out / f"{name}_overlays" / f"{safe_name(s.id)}.png", s.image, s.mask, pred)
            for k, extra_map in mp.items():  # extra maps in [0, 1] (only with save_uncertainty)
                write_map_png(out / f"{name}_{k}" / f"{safe_name(s.id)}.png", extra_map)
    if progress:
        progress(len(ids), len(ids))
    if not rows:
        raise DataError(f"no sample of '{data_root}' could be evaluated ({len(skipped)} skipped)")
    result = {
        "name": name,
        "task": "segment",
        **(extra or {}),
        "data_root": str(data_root),
        "data_format": reader.name,
        "n": len(rows),
        "skipped": skipped,
        "hd95_unit": "mm" if all(r["hd95_unit"] == "mm" for r in rows) else "px",
        "hd95_undefined": sum(1 for r in rows if math.isnan(r["hd95"])),
        "aggregate": aggregate(rows, METRICS + (HC_METRICS if any("hc_abs_err_mm" in r for r in rows) else ())),
        "rows": rows,
    }
    if out is not None:
        write_evaluation(out, name, result)
    return result
