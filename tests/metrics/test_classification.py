"""Classification metrics against hand-computed values."""
import math

import numpy as np

from sonokit.metrics import auroc_binary, classification_metrics


def test_auroc_by_hand_with_ties():
    # positives 0.9, 0.5; negatives 0.5, 0.1: pairs (0.9>0.5), (0.9>0.1), (0.5=0.5 half), (0.5>0.1) -> 3.5 / 4
    assert auroc_binary(np.array([0.9, 0.5, 0.5, 0.1]), np.array([1, 1, 0, 0], bool)) == 0.875
    assert math.isnan(auroc_binary(np.array([0.3, 0.4]), np.array([1, 1], bool)))


def test_accuracy_balanced_accuracy_confusion_and_unknown_labels():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
    labels = np.array([0, 1, 2, 2, -1])  # the last is unknown: left out
    m = classification_metrics(probs, labels)
    assert m["n"] == 4 and m["accuracy"] == 0.75
    assert m["recall"] == [1.0, 1.0, 0.5] and m["balanced_accuracy"] == 2.5 / 3
    assert m["confusion"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert 0 <= m["auroc"] <= 1
