"""The one sample container every reader returns and every model consumes."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Sample:
    """One B-mode frame and what is known about it.

    Attributes:
        image: float32 array in [0, 1], shape (1, H, W).
        mask: uint8 array in {0, 1}, shape (1, H, W), or None when unlabeled.
        id: stable identifier, unique within a dataset (e.g. ``"benign/benign (1)"``); split files list these.
        path: the image file it was read from (for DICOM: the file, with ``frame`` set).
        label: class label (e.g. ``"benign"``), or None.
        anatomy: anatomy label (e.g. ``"breast"``, ``"fetal_head"``), or None.
        spacing: pixel spacing in mm as (row, column), or None when unknown.
        group: patient / fetus / acquisition group; samples of one group never cross splits.
        frame: frame index within a multi-frame file, or None.
        meta: any further reader-specific facts (strings and numbers only).
    """

    image: np.ndarray
    mask: np.ndarray | None
    id: str
    path: Path
    label: str | None = None
    anatomy: str | None = None
    spacing: tuple[float, float] | None = None
    group: str | None = None
    frame: int | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[0] != 1:
            raise ValueError(f"sample '{self.id}': image must have shape (1, H, W), found {self.image.shape}")
        if self.mask is not None and self.mask.shape != self.image.shape:
            raise ValueError(
                f"sample '{self.id}': mask shape {self.mask.shape} differs from image shape {self.image.shape}"
            )

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[2])
