"""A generic folder dataset: ``images/`` and ``masks/`` paired by file stem.

Layout::

    ROOT/images/NAME.png        (any of .png .jpg .jpeg .bmp .tif .tiff)
    ROOT/masks/NAME.png         (or NAME_mask.png); the folder is optional: without it data is unlabeled
    ROOT/labels.csv             optional: columns ``id`` (the stem), ``label``, ``group``, ``spacing_mm``

This is also the layout ``sonokit simulate phantom`` writes, so the phantom exercises this reader.
"""
from __future__ import annotations

import csv
from pathlib import Path

from ...errors import DataError
from .base import FORMATS, DatasetReader, Record, list_images


@FORMATS.register("folder")
class FolderReader(DatasetReader):
    name = "folder"

    @classmethod
    def detect(cls, root: Path) -> bool:
        return (root / "images").is_dir()

    @classmethod
    def layout_hint(cls) -> str:
        return "images/NAME.png with masks/NAME.png (or NAME_mask.png)"

    def _labels(self) -> dict[str, dict[str, str]]:
        path = self.root / "labels.csv"
        if not path.exists():
            return {}
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "id" not in reader.fieldnames:
                raise DataError(f"'{path}' has columns {reader.fieldnames}; expected an 'id' column")
            return {row["id"]: row for row in reader}

    def index(self) -> list[Record]:
        img_dir, mask_dir = self.root / "images", self.root / "masks"
        if not img_dir.is_dir():
            raise DataError(f"folder dataset '{self.root}' has no images/ subfolder; expected {self.layout_hint()}")
        labeled = mask_dir.is_dir()
        masks = {}
        if labeled:
            for p in list_images(mask_dir):
                stem = p.stem[: -len("_mask")] if p.stem.endswith("_mask") else p.stem
                masks[stem] = p
        meta = self._labels()
        records = []
        images = list_images(img_dir)
        for p in images:
            m = masks.get(p.stem)
            if labeled and m is None:
                self.problems.append((str(p), f"missing mask; expected 'masks/{p.stem}.png'"))
            row = meta.get(p.stem, {})
            sp = row.get("spacing_mm")
            try:
                spacing = (float(sp), float(sp)) if sp else None
            except ValueError:
                raise DataError(f"'{self.root / 'labels.csv'}': spacing_mm of '{p.stem}' is '{sp}'; expected a number") from None
            records.append(
                Record(id=p.stem, image=p, masks=(m,) if m else (), labeled=labeled, label=row.get("label") or None,
                       group=row.get("group") or None, spacing=spacing, anatomy=row.get("anatomy") or None)
            )
        for stem in sorted(set(masks) - {p.stem for p in images}):
            self.problems.append((str(masks[stem]), "mask without an image"))
        return records

    def mask_hint(self, rec: Record) -> str:
        return f"'masks/{rec.image.stem}.png'"
