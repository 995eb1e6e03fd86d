"""Classification metrics from predicted probabilities and integer labels (pure NumPy / scikit-learn-free).

``classification_metrics(probs (N, K), labels (N,))`` returns accuracy, balanced accuracy (mean per-class
recall over the classes present), AUROC (one-vs-rest per class by the Mann-Whitney statistic with ties
counted half, macro mean over classes with both positives and negatives; for K = 2 the AUROC of class 1),
per-class recall and the confusion matrix (rows: true class, columns: predicted). Samples with label -1
(unknown) are left out.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata


def auroc_binary(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``positive`` (NaN when a class is absent)."""
    positive = np.asarray(positive, bool)
    n1, n0 = int(positive.sum()), int((~positive).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    r = rankdata(np.asarray(scores, np.float64))  # average ranks: ties count half
    return float((r[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def classification_metrics(probs: np.ndarray, labels: np.ndarray, *, num_classes: int | None = None) -> dict:
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"probs must be (N, K) and labels (N,); found {probs.shape} and {labels.shape}")
    k = num_classes or probs.shape[1]
    keep = labels >= 0
    probs, labels = probs[keep], labels[keep]
    pred = probs.argmax(1)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (labels, pred), 1)
    support = cm.sum(1)
    recall = [float(cm[i, i] / support[i]) if support[i] else math.nan for i in range(k)]
    present = [r for r in recall if not math.isnan(r)]
    if k == 2:
        auroc = auroc_binary(probs[:, 1], labels == 1)
    else:
        per = [auroc_binary(probs[:, i], labels == i) for i in range(k)]
        per = [a for a in per if not math.isnan(a)]
        auroc = float(np.mean(per)) if per else math.nan
    n = int(labels.size)
    return {"n": n, "accuracy": float((pred == labels).mean()) if n else math.nan,
            "balanced_accuracy": float(np.mean(present)) if present else math.nan, "auroc": auroc,
            "recall": recall, "confusion": cm.tolist()}
