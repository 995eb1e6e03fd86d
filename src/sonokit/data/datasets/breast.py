"""BrEaST-Lesions-USG (Pawłowska et al., Scientific Data 2024): 256 breast ultrasound cases.

Layout: ``caseNNN.png`` with ``caseNNN_tumor.png`` (lesion mask) and further structure masks
(``caseNNN_other*.png`` and similar), plus a metadata sheet (``*.xlsx`` / ``*.csv``) with an image-file
column and a ``Classification`` column (benign / malignant / normal). The lesion mask is the segmentation
target; the other masks' paths are recorded in ``meta["other_masks"]``. Normal cases have no tumour mask
and get an empty mask.
"""
from __future__ import annotations

import re
from pathlib import Path

from .base import FORMATS, DatasetReader, Record, label_lookup, natural_key, norm_key

_CASE = re.compile(r"^case\d+$", re.IGNORECASE)


def _files(root: Path) -> list[Path]:
    return sorted((p for p in root.rglob("case*.png") if p.is_file()), key=lambda p: natural_key(p.name))


@FORMATS.register("breast")
class BrEaSTReader(DatasetReader):
    name = "breast"
    anatomy = "breast"

    @classmethod
    def detect(cls, root: Path) -> bool:
        return any(p.stem.lower().endswith("_tumor") for p in _files(root)[:2000])

    @classmethod
    def layout_hint(cls) -> str:
        return "caseNNN.png with caseNNN_tumor.png (and a metadata sheet)"

    def index(self) -> list[Record]:
        files = _files(self.root)
        sheets = [p for p in sorted(self.root.rglob("*.xlsx")) + sorted(self.root.rglob("*.csv"))]
        labels: dict[str, str] = {}
        if sheets:
            labels = label_lookup(sheets[0], ("image_filename", "filename", "image", "case", "id"),
                                  ("classification", "class", "label", "diagnos"))
        by_case: dict[str, dict] = {}
        for p in files:
            stem = p.stem
            case, _, kind = stem.partition("_")
            entry = by_case.setdefault(case, {"image": None, "tumor": [], "other": []})
            if not kind:
                entry["image"] = p
            elif kind.lower().startswith("tumor"):
                entry["tumor"].append(p)
            else:
                entry["other"].append(p)
        records = []
        for case in sorted(by_case, key=natural_key):
            e = by_case[case]
            if e["image"] is None or not _CASE.match(case):
                for p in e["tumor"] + e["other"]:
                    self.problems.append((str(p), "mask without an image"))
                continue
            label = labels.get(norm_key(e["image"].name)) or labels.get(norm_key(case))
            if not e["tumor"] and label != "normal":
                self.problems.append((str(e["image"]), f"missing mask; expected '{case}_tumor.png'"))
            records.append(
                Record(
                    id=case, image=e["image"], masks=tuple(e["tumor"]), label=label, anatomy="breast",
                    meta=(("other_masks", ";".join(str(p) for p in e["other"])),) if e["other"] else (),
                )
            )
        return records

    def mask_hint(self, rec: Record) -> str:
        return f"'{rec.id}_tumor.png' next to it"
