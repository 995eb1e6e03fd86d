"""Writing a derived DICOM file: a copy of an input dataset with new pixels (e.g. ``sonokit enhance``'s
output), as uncompressed 8-bit MONOCHROME2 with a new SOP Instance UID and ``ImageType`` DERIVED."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import atomic_write, to_uint8

# attributes that describe the input's pixel encoding, colour or display transforms: wrong for the new pixels
_DROP = ("PlanarConfiguration", "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
         "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData",
         "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData", "PaletteColorLookupTableUID",
         "WindowCenter", "WindowWidth", "RescaleIntercept", "RescaleSlope", "RescaleType", "VOILUTSequence",
         "ModalityLUTSequence", "ICCProfile")


def write_derived_dicom(src: Path, frames: list[np.ndarray], out: Path, *,
                        description: str = "enhanced by sonokit (blind enhancement network)") -> Path:
    """Copy DICOM ``src`` with its pixels replaced by ``frames`` ((H, W) floats in [0, 1], or uint8) as 8-bit
    MONOCHROME2 (all frames); the rest of the dataset (patient, study, geometry) is kept."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = pydicom.dcmread(src)
    arr = np.stack([f if f.dtype == np.uint8 else to_uint8(f) for f in frames])  # (F, H, W) uint8
    for kw in _DROP:
        if kw in ds:
            delattr(ds, kw)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.Rows, ds.Columns = int(arr.shape[1]), int(arr.shape[2])
    if len(frames) > 1 or "NumberOfFrames" in ds:
        ds.NumberOfFrames = len(frames)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = (arr if len(frames) > 1 else arr[0]).tobytes()
    ds["PixelData"].VR = "OB"
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = description
    ds.LossyImageCompression = "00"
    return atomic_write(out, lambda tmp: ds.save_as(tmp, enforce_file_format=True))
