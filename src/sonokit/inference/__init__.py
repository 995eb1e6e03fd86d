"""Inference with trained models: read a checkpoint safely, rebuild its model, predict any image size.

Names are imported on first use (PEP 562), so the torch-free parts (:mod:`.lite`, :mod:`.files`,
:mod:`.extras`) load without torch."""
from __future__ import annotations

from ..lazy import lazy_getattr

_NAMES = {"predict": ".api", "Segmenter": ".segmenter", "Classifier": ".classifier",
          "read_task_checkpoint": ".checkpoint", "build_model": ".checkpoint", "model_weights": ".checkpoint",
          "task_of": ".checkpoint", "torch_device": ".checkpoint"}

__all__ = list(_NAMES)


__getattr__ = lazy_getattr(__name__, _NAMES, globals())
