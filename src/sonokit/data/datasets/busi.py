"""BUSI: Breast Ultrasound Images (Al-Dhabyani et al., Data in Brief 28:104863, 2020).

Layout: ``Dataset_BUSI_with_GT/{benign,malignant,normal}/NAME.png`` with ``NAME_mask.png`` and, for
multi-lesion cases, ``NAME_mask_1.png`` / ``NAME_mask_2.png`` (merged by union). Normal images have empty
masks. Ids are ``"<class>/<NAME>"``. BUSI records no patient ids, so duplicate groups (found by
:mod:`sonokit.data.check`) are the only grouping available to splits.
"""
from __future__ import annotations

import re
from pathlib import Path

from .base import FORMATS, DatasetReader, Record, list_images

CLASSES = ("benign", "malignant", "normal")
_MASK = re.compile(r"^(?P<stem>.+)_mask(?:_\d+)?$")


def _class_root(root: Path) -> Path:
    if (root / "Dataset_BUSI_with_GT").is_dir():
        return root / "Dataset_BUSI_with_GT"
    return root


@FORMATS.register("busi")
class BUSIReader(DatasetReader):
    name = "busi"
    anatomy = "breast"

    @classmethod
    def detect(cls, root: Path) -> bool:
        r = _class_root(root)
        return sum((r / c).is_dir() for c in CLASSES) >= 2

    @classmethod
    def layout_hint(cls) -> str:
        return "Dataset_BUSI_with_GT/{benign,malignant,normal}/NAME.png with NAME_mask.png"

    def index(self) -> list[Record]:
        croot = _class_root(self.root)
        records = []
        for cls_name in CLASSES:
            folder = croot / cls_name
            if not folder.is_dir():
                continue
            files = list_images(folder)
            masks: dict[str, list[Path]] = {}
            images = []
            for p in files:
                m = _MASK.match(p.stem)
                if m:
                    masks.setdefault(m.group("stem"), []).append(p)
                else:
                    images.append(p)
            image_stems = {p.stem for p in images}
            for stem in sorted(set(masks) - image_stems):
                self.problems.append((str(masks[stem][0]), "mask without an image"))
            for p in images:
                ms = tuple(sorted(masks.get(p.stem, []), key=lambda q: q.name))
                if not ms:
                    self.problems.append((str(p), f"missing mask; expected '{p.stem}_mask.png'"))
                records.append(
                    Record(id=f"{cls_name}/{p.stem}", image=p, masks=ms, label=cls_name, anatomy="breast",
                           labeled=True)
                )
        return records

    def mask_hint(self, rec: Record) -> str:
        return f"'{rec.image.stem}_mask.png' in the same folder"
