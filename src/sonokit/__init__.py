"""sonokit: ultrasound-native deep learning.

A small public API, imported lazily (``import sonokit`` loads no torch until a name below is used)::

    cfg = sonokit.load_config("configs/busi_resunet18_cpu.yaml", ["optim.epochs=2"])
    run = sonokit.fit(cfg)                                           # -> run folder
    res = sonokit.evaluate(run / "checkpoints/best.ckpt")             # held-out test split
    masks = sonokit.predict(run / "checkpoints/best.ckpt", ["scan.png"])
    seg = sonokit.load("busi-lesion")                                 # a shipped model (sonokit.zoo)

Everything else lives in the subpackages (``sonokit.data``, ``sonokit.models``, ``sonokit.physics``,
``sonokit.metrics``, ``sonokit.tasks``, ``sonokit.runs``, ``sonokit.reports``, ...).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "load_config": "sonokit.config", "fit": "sonokit.runs", "evaluate": "sonokit.evaluation",
    "predict": "sonokit.inference", "Segmenter": "sonokit.inference", "Classifier": "sonokit.inference",
    "open_dataset": "sonokit.data", "Sample": "sonokit.data", "create_model": "sonokit.models",
    "list_models": "sonokit.models", "simulate_phantom": "sonokit.physics", "build_report": "sonokit.reports",
    "load": "sonokit.zoo",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):  # PEP 562: the heavy subpackages are imported on first use
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sonokit' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
