"""Dataset readers, one per published layout, all returning :class:`sonokit.data.Sample`."""
from __future__ import annotations

from pathlib import Path

from ...errors import DataError
from .base import FORMATS, DatasetReader, Record
from .breast import BrEaSTReader
from .busi import BUSIReader
from .ddti import DDTIReader
from .dicom import DicomReader
from .folder import FolderReader
from .hc18 import HC18Reader
from .udiat import UDIATReader

_DETECT_ORDER = ("busi", "hc18", "udiat", "breast", "ddti", "folder", "dicom")


def detect_format(root: str | Path) -> str:
    root = Path(root)
    if not root.exists():
        raise DataError(f"dataset path '{root}' does not exist")
    for name in _DETECT_ORDER:
        if FORMATS.get(name).detect(root):
            return name
    hints = "; ".join(f"{n}: {FORMATS.get(n).layout_hint()}" for n in _DETECT_ORDER)
    raise DataError(f"cannot tell the dataset format of '{root}'. Expected one of these layouts — {hints}. "
                    "Pass --format to choose one.")


def open_dataset(root: str | Path, format: str | None = None) -> DatasetReader:
    """Open a dataset folder with the reader for ``format`` (auto-detected when None)."""
    root = Path(root)
    name = format or detect_format(root)
    cls = FORMATS.get(name)
    if format is not None and root.exists() and not cls.detect(root):
        found = _safe_detect(root)
        raise DataError(f"'{root}' does not look like a {name} dataset; expected {cls.layout_hint()}"
                        + (f" (it looks like '{found}': try --format {found})" if found else ""))
    return cls(root)


def _safe_detect(root: Path) -> str | None:
    try:
        return detect_format(root)
    except DataError:
        return None


__all__ = ["FORMATS", "DatasetReader", "Record", "open_dataset", "detect_format", "BUSIReader", "UDIATReader",
           "BrEaSTReader", "HC18Reader", "DDTIReader", "FolderReader", "DicomReader"]
