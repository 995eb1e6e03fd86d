"""UDIAT Dataset B (Yap et al., IEEE JBHI 2018): 163 breast lesion images.

Layout: ``original/000001.png`` with ``GT/000001.png`` (masks 1-bit or 8-bit {0, 255}); benign/malignant
labels come from ``DatasetB.xlsx`` when present (an image column and a type column, ``Benign``/``CANCER``).
"""
from __future__ import annotations

from pathlib import Path

from .base import FORMATS, DatasetReader, Record, label_lookup, list_images, norm_key


@FORMATS.register("udiat")
class UDIATReader(DatasetReader):
    name = "udiat"
    anatomy = "breast"

    @classmethod
    def detect(cls, root: Path) -> bool:
        return (root / "original").is_dir() and (root / "GT").is_dir()

    @classmethod
    def layout_hint(cls) -> str:
        return "original/NNNNNN.png with GT/NNNNNN.png (and optionally DatasetB.xlsx)"

    def index(self) -> list[Record]:
        img_dir, gt_dir = self.root / "original", self.root / "GT"
        if not img_dir.is_dir():
            return []
        gts = {p.stem: p for p in list_images(gt_dir)} if gt_dir.is_dir() else {}
        sheets = sorted(self.root.glob("*.xlsx")) + sorted(self.root.glob("*.csv"))
        labels = label_lookup(sheets[0], ("image", "name", "file", "id"), ("type", "class", "label", "diagnos")) if sheets else {}
        records = []
        for p in list_images(img_dir):
            gt = gts.get(p.stem)
            if gt is None:
                self.problems.append((str(p), f"missing mask; expected 'GT/{p.name}'"))
            records.append(
                Record(id=p.stem, image=p, masks=(gt,) if gt else (), label=labels.get(norm_key(p.stem)),
                       anatomy="breast")
            )
        for stem in sorted(set(gts) - {p.stem for p in list_images(img_dir)}):
            self.problems.append((str(gts[stem]), "mask without an image"))
        return records

    def mask_hint(self, rec: Record) -> str:
        return f"'GT/{rec.image.name}'"
