"""sonokit.data: the Sample container, readers for public datasets, folders and DICOM, checks and splits.

Names are imported on first use (PEP 562): ``sonokit.data.io`` or ``sonokit.data.inputs`` (what ``sonokit
segment`` needs) load without the dataset readers and their scipy imports."""
from __future__ import annotations

import importlib

_NAMES = {"Sample": ".sample", "DatasetReader": ".datasets", "Record": ".datasets", "FORMATS": ".datasets",
          "open_dataset": ".datasets", "detect_format": ".datasets", "read_image": ".io", "read_mask": ".io",
          "write_png": ".io"}

__all__ = list(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sonokit.data' has no attribute '{name}'")
