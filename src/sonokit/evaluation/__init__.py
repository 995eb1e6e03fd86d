"""Evaluation of trained models on held-out data: ``evaluate(checkpoint, ...)`` (the API and the CLI's
``sonokit evaluate``), and the per-task scorers it calls."""
from ..data.io import safe_name
from .api import default_name, evaluate
from .classify import evaluate_classification
from .segment import evaluate_segmentation

__all__ = ["evaluate", "evaluate_segmentation", "evaluate_classification", "default_name", "safe_name"]
