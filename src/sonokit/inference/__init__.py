"""Inference with trained models: read a checkpoint safely, rebuild its model, predict any image size.

Names are imported on first use (PEP 562), so the torch-free parts (:mod:`.lite`, :mod:`.files`,
:mod:`.extras`) load without torch."""
from __future__ import annotations

import importlib

_NAMES = {"predict": ".api", "Segmenter": ".segmenter", "Classifier": ".classifier",
          "read_task_checkpoint": ".checkpoint", "build_model": ".checkpoint", "model_weights": ".checkpoint",
          "task_of": ".checkpoint", "torch_device": ".checkpoint"}

__all__ = list(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sonokit.inference' has no attribute '{name}'")
