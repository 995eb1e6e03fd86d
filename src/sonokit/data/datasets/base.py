"""The reader interface shared by every dataset format, and the format registry."""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ...errors import DataError
from ...registry import Registry
from ..io import IMAGE_SUFFIXES, read_image, read_mask
from ..sample import Sample

FORMATS: Registry["type[DatasetReader]"] = Registry("dataset format")


@dataclass(frozen=True)
class Record:
    """Where one sample lives on disk; cheap to build for every file (no pixels read)."""

    id: str
    image: Path
    masks: tuple[Path, ...] = ()
    labeled: bool = True  # False: no annotation is expected (unlabeled data)
    label: str | None = None
    group: str | None = None
    spacing: tuple[float, float] | None = None
    anatomy: str | None = None
    frame: int | None = None
    meta: tuple = field(default=())  # (key, value) pairs

    @property
    def missing_mask(self) -> bool:
        return self.labeled and not self.masks and self.label != "normal"

    def get_label(self, key: str = "label") -> str | None:
        """The class of this sample under ``key``: ``"label"`` (the reader's class) or a meta key
        (e.g. ``"tirads"`` for DDTI); None when unknown."""
        if key == "label":
            return self.label
        value = dict(self.meta).get(key)
        return None if value in (None, "") else str(value)


class DatasetReader:
    """Base class: index a dataset's ORIGINAL published layout into :class:`Record` s, load :class:`Sample` s.

    Subclasses implement :meth:`index` (and optionally :meth:`load`, :meth:`detect`). Indexing problems
    that do not stop the dataset from being used (a missing mask, an unpaired file) are collected in
    :attr:`problems` as ``(path, message)`` pairs, not raised.
    """

    name = "base"
    anatomy: str | None = None

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise DataError(f"dataset folder '{self.root}' does not exist")
        self.problems: list[tuple[str, str]] = []
        self.records: list[Record] = self.index()
        if not self.records:
            raise DataError(
                f"no {self.name} images found under '{self.root}'; expected {self.layout_hint()}"
            )
        ids = [r.id for r in self.records]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
            raise DataError(f"dataset '{self.root}' has repeated sample ids {dup}; ids must be unique")
        self._by_id = {r.id: i for i, r in enumerate(self.records)}

    # -- to implement -------------------------------------------------------------------------------
    def index(self) -> list[Record]:
        raise NotImplementedError

    @classmethod
    def detect(cls, root: Path) -> bool:
        """True when ``root`` looks like this format's layout."""
        return False

    @classmethod
    def layout_hint(cls) -> str:
        return "the dataset's published layout"

    # -- shared -------------------------------------------------------------------------------------
    def load_mask(self, rec: Record, shape: tuple[int, int]) -> tuple[np.ndarray | None, bool]:
        """Union of the record's mask files, checked against the image size; (mask, nonbinary)."""
        if not rec.labeled:
            return None, False
        if rec.missing_mask:
            raise DataError(f"no mask found for image '{rec.image}'; expected {self.mask_hint(rec)}")
        mask = np.zeros(shape, np.uint8)
        nonbinary = False
        for mp in rec.masks:
            m, nb = read_mask(mp)
            if m.shape != shape:
                raise DataError(
                    f"mask '{mp}' is {m.shape[1]}x{m.shape[0]} (WxH) but its image '{rec.image.name}' is "
                    f"{shape[1]}x{shape[0]}; expected equal sizes"
                )
            nonbinary |= nb
            mask |= m
        return self.finish_mask(mask), nonbinary

    def finish_mask(self, mask: np.ndarray) -> np.ndarray:
        """Turn the union of a record's annotation files (H, W) into the target mask; identity by default."""
        return mask

    def mask_hint(self, rec: Record) -> str:
        return "a mask file next to it"

    def load(self, rec: Record) -> Sample:
        image, info = read_image(rec.image)
        mask, nonbinary = self.load_mask(rec, image.shape)
        meta = dict(rec.meta)
        meta.update(info)
        if nonbinary:
            meta["nonbinary_mask"] = True
        return Sample(
            image=image[None],
            mask=None if mask is None else mask[None],
            id=rec.id,
            path=rec.image,
            label=rec.label,
            anatomy=rec.anatomy or self.anatomy,
            spacing=rec.spacing,
            group=rec.group,
            frame=rec.frame,
            meta=meta,
        )

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Sample:
        return self.load(self.records[i])

    def __iter__(self) -> Iterator[Sample]:
        for r in self.records:
            yield self.load(r)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    def restrict(self, ids) -> None:
        """Keep only the samples ``ids`` (in the dataset's order), e.g. the train part of a split; an id the
        dataset lacks is a :class:`DataError`."""
        keep = set(ids)
        missing = sorted(keep - set(self._by_id))
        if missing:
            raise DataError(f"{len(missing)} ids are not in dataset '{self.root}' ({self.name}), e.g. {missing[:3]}")
        self.records = [r for r in self.records if r.id in keep]
        self._by_id = {r.id: i for i, r in enumerate(self.records)}

    def record(self, sample_id: str) -> Record:
        if sample_id not in self._by_id:
            raise DataError(f"sample id '{sample_id}' is not in dataset '{self.root}' ({self.name})")
        return self.records[self._by_id[sample_id]]

    def get(self, sample_id: str) -> Sample:
        return self.load(self.record(sample_id))

    @property
    def labels(self) -> list[str | None]:
        return [r.label for r in self.records]


# ---- helpers shared by readers ---------------------------------------------------------------------
def natural_key(s: str) -> list:
    """Sort 'benign (2)' before 'benign (10)'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def list_images(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: natural_key(p.name),
    )


def normalize_label(value: object) -> str | None:
    """Map the spellings used by public breast datasets onto benign / malignant / normal."""
    if value is None:
        return None
    s = str(value).strip().lower()
    if not s or s in ("nan", "none"):
        return None
    if s.startswith("benign") or s == "b":
        return "benign"
    if s.startswith("malig") or s.startswith("cancer") or s == "m":
        return "malignant"
    if s.startswith("normal"):
        return "normal"
    return s


def norm_key(v: object) -> str:
    """The key :func:`label_lookup` files a label under, for an image id or file name: the file stem,
    stripped and lower-cased, with leading zeros dropped from all-digit stems (``'Case 007.png'`` ->
    ``'case 007'``, ``'007.png'`` -> ``'7'``). Readers look labels up with ``labels.get(norm_key(name))``."""
    s = Path(str(v).strip()).stem.lower()
    return str(int(s)) if s.isdigit() else s


def read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV or the first sheet of an XLSX with a header row, as lower-cased-key dicts."""
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]
    try:
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many types for a bad file
        raise DataError(f"cannot read spreadsheet '{path}': {e}; expected an .xlsx file") from None
    rows = [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
    wb.close()
    # the header is the first row with at least two non-empty text cells
    for h, row in enumerate(rows):
        if sum(isinstance(c, str) and c.strip() != "" for c in row) >= 2:
            header = [str(c).strip().lower() if c is not None else "" for c in row]
            return [
                {header[j]: ("" if c is None else str(c).strip()) for j, c in enumerate(r) if j < len(header)}
                for r in rows[h + 1 :]
                if any(c is not None for c in r)
            ]
    return []


def label_lookup(path: Path, id_words: tuple[str, ...], label_words: tuple[str, ...]) -> dict[str, str]:
    """{norm_key(image id): normalised label} from a metadata table whose columns contain those words."""
    rows = read_table(path)
    if not rows:
        return {}
    cols = list(rows[0])
    # the first word (in priority order) that some column contains picks that column
    id_col = next((c for w in id_words for c in cols if w in c), None)
    lab_col = next((c for w in label_words for c in cols if w in c and c != id_col), None)
    if id_col is None or lab_col is None:
        raise DataError(
            f"metadata '{path}' has columns {cols}; expected an image column (one of {id_words}) "
            f"and a label column (one of {label_words})"
        )
    out = {}
    for r in rows:
        key, lab = r.get(id_col, ""), normalize_label(r.get(lab_col))
        if key and lab:
            out[norm_key(key)] = lab
    return out
