"""sonokit.data: the Sample container, readers for public datasets, folders and DICOM, checks and splits."""
from .datasets import FORMATS, DatasetReader, Record, detect_format, open_dataset
from .io import read_image, read_mask, write_png
from .sample import Sample

__all__ = ["Sample", "DatasetReader", "Record", "FORMATS", "open_dataset", "detect_format", "read_image",
           "read_mask", "write_png"]
