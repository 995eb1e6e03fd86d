"""Evaluation of trained models on held-out data: ``evaluate(checkpoint, ...)`` (the API and the CLI's
``sonokit evaluate``), the per-task scorers it calls, paired per-image comparisons of two models, and the organ
head's accuracy of an anatomy-aware encoder (``organ_accuracy``)."""
from ..data.io import safe_name
from .api import default_name, evaluate
from .classify import evaluate_classification
from .organ import load_pretrained_encoder, organ_accuracy, organ_offset_effect
from .paired import mean_per_image, paired_bootstrap, per_image
from .segment import evaluate_segmentation

__all__ = ["evaluate", "evaluate_segmentation", "evaluate_classification", "default_name", "safe_name",
           "paired_bootstrap", "per_image", "mean_per_image", "organ_accuracy", "organ_offset_effect",
           "load_pretrained_encoder"]
