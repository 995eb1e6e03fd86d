"""DICOM ultrasound: single- and multi-frame files, MONOCHROME1/2, RGB, YBR_FULL(_422), PALETTE COLOR.

Every frame is one sample with id ``"<relative path>#<frame>"`` (``"<relative path>"`` for single-frame
files). Colour frames are converted to gray with BT.601 luma (``meta["colour"]``). Physical pixel spacing
comes from the Sequence of Ultrasound Regions (PhysicalDeltaX/Y, units code 3 = cm, converted to mm) when
present, else from PixelSpacing (mm). DICOM carries no masks, so these samples are unlabeled.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..sample import Sample
from .base import FORMATS, DatasetReader, Record, natural_key

_SUFFIXES = (".dcm", ".dicom")


def is_dicom(p: Path) -> bool:
    """Whether ``p`` is a DICOM file: a ``.dcm`` / ``.dicom`` suffix, or no suffix and the ``DICM`` magic at
    byte 128 of a Part 10 file."""
    if p.suffix.lower() in _SUFFIXES:
        return True
    if p.suffix == "" and p.is_file():
        with open(p, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    return False


def read_dicom(path: Path, stop_before_pixels: bool = False):
    """The pydicom dataset of ``path`` (without the pixel data when ``stop_before_pixels``); raises
    :class:`DataError` naming the file for an empty or unreadable file."""
    import pydicom

    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"'{path}' is an empty file; expected a DICOM file")
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except Exception as e:  # pydicom raises InvalidDicomError, OSError, ...
        raise DataError(f"cannot read DICOM '{path}': {e}; expected a DICOM Part 10 file") from None


@lru_cache(maxsize=2)
def dicom_frames(path: Path) -> tuple[np.ndarray, dict]:
    """All frames of a DICOM file as float32 (F, H, W) in [0, 1], plus conversion info (``photometric``,
    ``colour``, ...); the last two files read are cached. Raises :class:`DataError` for undecodable pixels."""
    ds = read_dicom(path)
    try:
        from pydicom.pixels import pixel_array

        arr = pixel_array(ds, as_rgb=False)
    except Exception as e:
        raise DataError(f"cannot decode pixels of DICOM '{path}': {e}") from None
    pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    nframes = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1))
    info: dict = {"photometric": pi}
    if pi == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr, spp = apply_color_lut(arr, ds), 3
    if spp == 3:
        if nframes == 1 and arr.ndim == 3:
            arr = arr[None]
        if pi.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            arr = convert_color_space(arr, pi, "RGB")
        rgb = arr.astype(np.float32)
        same = np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
        if not same:
            info["colour"] = True
        gray = rgb[..., 0] if same else rgb @ np.array([0.299, 0.587, 0.114], np.float32)
        maxval = float(2 ** int(ds.get("BitsStored", 8)) - 1)
    else:
        if nframes == 1 and arr.ndim == 2:
            arr = arr[None]
        gray = arr.astype(np.float32)
        bits = int(ds.get("BitsStored", 8))
        if np.issubdtype(arr.dtype, np.signedinteger) and gray.min() < 0:
            gray = gray - gray.min()
        maxval = float(2**bits - 1)
        if pi == "MONOCHROME1":
            gray = maxval - gray
    gray = np.clip(gray / maxval, 0.0, 1.0)
    if gray.ndim != 3:
        raise DataError(f"DICOM '{path}' has pixel array shape {arr.shape}; expected 2-D frames")
    return np.ascontiguousarray(gray, dtype=np.float32), info


def dicom_spacing(ds) -> tuple[float, float] | None:
    """(row, col) spacing in mm from the ultrasound regions sequence, else PixelSpacing."""
    regions = ds.get("SequenceOfUltrasoundRegions")
    if regions:
        r = regions[0]
        ux, uy = r.get("PhysicalUnitsXDirection"), r.get("PhysicalUnitsYDirection")
        dx, dy = r.get("PhysicalDeltaX"), r.get("PhysicalDeltaY")
        if ux == 3 and uy == 3 and dx and dy:  # 3 = cm
            return (abs(float(dy)) * 10.0, abs(float(dx)) * 10.0)
    ps = ds.get("PixelSpacing")
    if ps is not None and len(ps) == 2:
        return (float(ps[0]), float(ps[1]))
    return None


@FORMATS.register("dicom")
class DicomReader(DatasetReader):
    name = "dicom"

    @classmethod
    def detect(cls, root: Path) -> bool:
        if root.is_file():
            return is_dicom(root)
        return any(p.suffix.lower() in _SUFFIXES for p in root.rglob("*"))

    @classmethod
    def layout_hint(cls) -> str:
        return "DICOM files (*.dcm, *.dicom, or DICM files without suffix)"

    def index(self) -> list[Record]:
        if self.root.is_file():
            files, base = [self.root], self.root.parent
        else:
            files = sorted((p for p in self.root.rglob("*") if p.is_file() and is_dicom(p)),
                           key=lambda p: natural_key(str(p)))
            base = self.root
        records = []
        for f in files:
            try:
                ds = read_dicom(f, stop_before_pixels=True)
            except DataError as e:
                if self.root.is_file():  # the one file named: its own error, not "no dicom images found"
                    raise
                self.problems.append((str(f), str(e)))
                continue
            n = int(ds.get("NumberOfFrames", 1) or 1)
            spacing = dicom_spacing(ds)
            rel = str(f.relative_to(base).with_suffix("")) if f != base else f.stem
            for k in range(n):
                records.append(
                    Record(id=rel if n == 1 else f"{rel}#{k}", image=f, labeled=False, frame=k if n > 1 else None,
                           spacing=spacing, group=str(ds.get("PatientID", "")) or None,
                           anatomy=None)
                )
        return records

    def load(self, rec: Record) -> Sample:
        frames, info = dicom_frames(rec.image)
        k = rec.frame or 0
        if k >= frames.shape[0]:
            raise DataError(f"DICOM '{rec.image}' has {frames.shape[0]} frames; frame {k} requested")
        return Sample(image=frames[k][None].copy(), mask=None, id=rec.id, path=rec.image, spacing=rec.spacing,
                      group=rec.group, frame=rec.frame, meta=dict(info))
