"""sonokit.data: the Sample container, readers for public datasets, folders and DICOM, checks and splits.

Names are imported on first use (PEP 562): ``sonokit.data.io`` or ``sonokit.data.inputs`` (what ``sonokit
segment`` needs) load without the dataset readers and their scipy imports."""
from __future__ import annotations

from ..lazy import lazy_getattr

_NAMES = {"Sample": ".sample", "DatasetReader": ".datasets", "Record": ".datasets", "FORMATS": ".datasets",
          "open_dataset": ".datasets", "detect_format": ".datasets", "read_image": ".io", "read_mask": ".io",
          "write_png": ".io"}

__all__ = list(_NAMES)


__getattr__ = lazy_getattr(__name__, _NAMES, globals())
