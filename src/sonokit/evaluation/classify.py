"""Score a classification model on dataset samples: per-image predictions and the aggregate metrics.

Writes ``<name>.json`` (accuracy, balanced accuracy, AUROC, per-class recall, confusion matrix, rows) and
``<name>_per_image.csv`` (id, true class, predicted class, one probability column per class).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..data import open_dataset
from ..errors import DataError
from ..inference import Classifier
from ..metrics.classification import classification_metrics
from .output import write_evaluation


def evaluate_classification(classifier: Classifier, *, data_root: str | Path, data_format: str | None,
                            ids: list[str] | None, label_key: str = "label", out_dir: str | Path | None = None,
                            name: str = "test", batch_size: int = 16,
                            progress: Callable[[int, int], None] | None = None, extra: dict | None = None) -> dict:
    reader = open_dataset(data_root, data_format)
    ids = ids if ids is not None else reader.ids
    classes = classifier.classes
    rows, skipped = [], []
    probs_all, labels_all = [], []
    for start in range(0, len(ids), batch_size):
        if progress:
            progress(start, len(ids))
        batch = []
        for sid in ids[start:start + batch_size]:
            rec = reader.record(sid)
            lab = rec.get_label(label_key)
            if lab is None or lab not in classes:
                skipped.append({"id": sid, "error": f"no class label among {classes}" if lab is None
                                else f"label '{lab}' is not a class of this model ({classes})"})
                continue
            try:
                batch.append((reader.get(sid), classes.index(lab)))
            except DataError as e:
                skipped.append({"id": sid, "error": str(e)})
        if not batch:
            continue
        probs = classifier.predict_batch([s.image for s, _ in batch])
        for (s, y), p in zip(batch, probs):
            probs_all.append(p)
            labels_all.append(y)
            rows.append({"id": s.id, "label": classes[y], "pred": classes[int(np.argmax(p))],
                         **{f"p_{c}": float(v) for c, v in zip(classes, p)}})
    if progress:
        progress(len(ids), len(ids))
    if not rows:
        raise DataError(f"no sample of '{data_root}' could be evaluated ({len(skipped)} skipped"
                        + (f", e.g. {skipped[0]['id']}: {skipped[0]['error']}" if skipped else "") + ")")
    m = classification_metrics(np.stack(probs_all), np.asarray(labels_all), num_classes=len(classes))
    result = {"name": name, "task": "classify", **(extra or {}), "data_root": str(data_root), "data_format": reader.name,
              "classes": classes, "n": len(rows), "skipped": skipped,
              "metrics": {k: m[k] for k in ("accuracy", "balanced_accuracy", "auroc")},
              "recall": dict(zip(classes, m["recall"])), "confusion": m["confusion"], "rows": rows}
    if out_dir is not None:
        write_evaluation(out_dir, name, result)
    return result
