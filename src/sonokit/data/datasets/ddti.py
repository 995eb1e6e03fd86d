"""DDTI: the Digital Database of Thyroid Ultrasound Images (Pedraza, Vargas, Narváez, Durán, Muñoz & Romero,
"An open access thyroid ultrasound image database", 10th International Symposium on Medical Information
Processing and Analysis, Proc. SPIE 9287, 92870W, 2015; Universidad Nacional de Colombia).

Read in the post-processed form of the public ``xuao575/DDTI_preprocessing`` repository, where each nodule
is cropped out of its frame (black border removed), resized to a 300x300 square and given a filled mask::

    ROOT/cropped/NAME.png      8-bit gray, 300x300
    ROOT/mask/NAME.gif         0/255, 300x300 (read into {0, 1} by :func:`sonokit.data.io.read_mask`)
    ROOT/diagnosis.csv         NO header row: ``NAME,TIRADS,SUSPICIOUS``

``NAME`` is ``PATIENT_FRAME`` or ``PATIENT_FRAME(k)``, the k-th nodule of a frame with several (``139_1(2)``).
One :class:`Record` per image, with id ``NAME``.

Labels: ``TIRADS`` is the expert's TI-RADS category, one of ``2, 3, 4a, 4b, 4c, 5`` or ``None`` where none
was given; it is kept as a string in ``meta["tirads"]`` (absent when ``None``). ``SUSPICIOUS`` is the
binary target: ``1`` (TI-RADS >= 4) gives ``label="suspicious"``, ``0`` (TI-RADS 2-3) gives
``"not_suspicious"``, an empty cell gives ``label=None`` (unknown). The label always follows the SUSPICIOUS
column; a SUSPICIOUS value that disagrees with its TI-RADS category (for instance ``4a,0`` or ``None,1``) is
reported in :attr:`~DatasetReader.problems`, not corrected.

Grouping: several frames, and several nodules of a frame, come from one patient, so ``group`` is
``"patient<PATIENT>"`` (the leading number of ``NAME``) and splits keep a patient's images together.

Spacing is ``None``: the crops were resized to 300x300 without keeping their aspect ratio, so the physical
pixel size is unknown (and differs between the two axes).

The copy in ``../shared/data/ddti`` is a subset: 427 of the 655 nodules (every image of 245 of the 380
patients), 48 labelled not_suspicious, 256 suspicious, 123 unlabelled. Known defects of that copy, left as
published: six masks are all zero although their crop shows a nodule (``337_3(1)``, ``337_3(2)``,
``337_3(3)``, ``358_1(2)``, ``378_1(2)``, ``399_1(2)``); ``150_1``, ``323_1``, ``326_1`` and ``349_1`` (four
patients, all unlabelled) are the same image, so the duplicate groups of :mod:`sonokit.data.check` must be
joined with the patient groups when splitting (:mod:`sonokit.data.splits` does); and the two nodule crops of
``350_2``, ``359_1``, ``374_1`` and ``381_2`` are identical.

Problems collected in :attr:`~DatasetReader.problems` (the dataset stays usable): an image without a mask,
a mask without an image, an image missing from ``diagnosis.csv`` (or no ``diagnosis.csv`` at all), a CSV row
naming no image, a row listed twice, a TI-RADS category or SUSPICIOUS value outside the ones above, a
SUSPICIOUS value inconsistent with TI-RADS, and a NAME that does not follow ``PATIENT_FRAME[(k)]`` (such an
image gets no patient group). A CSV row without exactly three columns raises :class:`DataError`.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

from ...errors import DataError
from .base import FORMATS, DatasetReader, Record, list_images, natural_key

IMAGE_DIR, MASK_DIR, DIAGNOSIS = "cropped", "mask", "diagnosis.csv"
MASK_SUFFIXES = (".gif", ".png")  # the published layout uses .gif; .png is accepted for re-saved copies
TIRADS = ("2", "3", "4a", "4b", "4c", "5")
LABELS = {"1": "suspicious", "0": "not_suspicious", "": None}
# the SUSPICIOUS value each TI-RADS category implies ("" for no category: unknown)
_EXPECTED = {"2": "0", "3": "0", "4a": "1", "4b": "1", "4c": "1", "5": "1", None: ""}
_NAME = re.compile(r"^(?P<patient>\d+)_(?P<frame>\d+)(?:\((?P<nodule>\d+)\))?$")


def read_diagnosis(path: Path) -> list[tuple[int, str, str | None, str]]:
    """Rows of a header-less ``NAME,TIRADS,SUSPICIOUS`` file as ``(line, name, tirads, suspicious)``.

    ``tirads`` is lower-cased, ``None`` for an empty cell or ``None``; ``suspicious`` is the stripped cell
    (``""`` when empty). Blank lines are skipped. Raises :class:`DataError` naming the file and line for a
    row without exactly three columns.
    """
    out = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 3:
                raise DataError(
                    f"'{path}' line {reader.line_num} has {len(row)} column(s) {row!r}; expected 3 columns "
                    "NAME,TIRADS,SUSPICIOUS with no header row, e.g. '139_1(2),4a,1'"
                )
            name, tirads, suspicious = (c.strip() for c in row)
            t = tirads.lower()
            out.append((reader.line_num, name, None if t in ("", "none") else t, suspicious))
    return out


@FORMATS.register("ddti")
class DDTIReader(DatasetReader):
    """Thyroid nodules of DDTI (xuao575/DDTI_preprocessing layout); see the module docstring."""

    name = "ddti"
    anatomy = "thyroid"

    @classmethod
    def detect(cls, root: Path) -> bool:
        return (root / IMAGE_DIR).is_dir() and ((root / MASK_DIR).is_dir() or (root / DIAGNOSIS).is_file())

    @classmethod
    def layout_hint(cls) -> str:
        return "cropped/NAME.png with mask/NAME.gif and diagnosis.csv (NAME,TIRADS,SUSPICIOUS; no header)"

    def _diagnosis(self, image_names: set[str]) -> dict[str, tuple[str | None, str | None]]:
        """{NAME: (tirads, label)} from diagnosis.csv, reporting bad or inconsistent rows."""
        path = self.root / DIAGNOSIS
        if not path.is_file():
            self.problems.append((str(path), "diagnosis.csv not found; every label and TI-RADS category is unknown"))
            return {}
        out: dict[str, tuple[str | None, str | None]] = {}
        for lineno, name, tirads, suspicious in read_diagnosis(path):
            where = f"{path}:{lineno}"
            if name in out:
                self.problems.append((where, f"'{name}' is listed again; the first row is used"))
                continue
            if name not in image_names:
                self.problems.append((where, f"row names '{name}' but there is no '{IMAGE_DIR}/{name}.png'"))
            if tirads is not None and tirads not in TIRADS:
                self.problems.append((where, f"TI-RADS of '{name}' is '{tirads}'; expected one of "
                                             f"{', '.join(TIRADS)} or None"))
            if suspicious not in LABELS:
                self.problems.append((where, f"SUSPICIOUS of '{name}' is '{suspicious}'; expected 1, 0 or empty "
                                             "(unknown); the label is set to unknown"))
                out[name] = (tirads, None)
                continue
            expected = _EXPECTED.get(tirads)
            if expected is not None and suspicious != expected:
                given = f"'{suspicious}'" if suspicious else "empty (unknown)"
                implied = f"TI-RADS {tirads} implies '{expected}'" if tirads is not None else \
                    "no TI-RADS category implies an empty cell (unknown)"
                self.problems.append((where, f"SUSPICIOUS of '{name}' is {given} but {implied}; "
                                             "the SUSPICIOUS value is kept"))
            out[name] = (tirads, LABELS[suspicious])
        return out

    def index(self) -> list[Record]:
        img_dir, mask_dir = self.root / IMAGE_DIR, self.root / MASK_DIR
        if not img_dir.is_dir():
            raise DataError(f"DDTI folder '{self.root}' has no {IMAGE_DIR}/ subfolder; expected {self.layout_hint()}")
        images = list_images(img_dir)
        masks: dict[str, Path] = {}
        if mask_dir.is_dir():
            for p in sorted(mask_dir.iterdir(), key=lambda q: natural_key(q.name)):
                if p.is_file() and p.suffix.lower() in MASK_SUFFIXES:
                    masks.setdefault(p.stem, p)
        else:
            self.problems.append((str(mask_dir), f"no {MASK_DIR}/ folder; every image lacks its mask"))
        names = {p.stem for p in images}
        diagnosis = self._diagnosis(names)
        records = []
        for p in images:
            m = masks.get(p.stem)
            if m is None and mask_dir.is_dir():
                self.problems.append((str(p), f"missing mask; expected '{MASK_DIR}/{p.stem}.gif'"))
            if p.stem not in diagnosis and (self.root / DIAGNOSIS).is_file():
                self.problems.append((str(p), f"not listed in {DIAGNOSIS}; label and TI-RADS unknown"))
            match = _NAME.match(p.stem)
            if match is None:
                self.problems.append((str(p), "name does not follow PATIENT_FRAME or PATIENT_FRAME(k) "
                                              "(e.g. '139_1(2)'); no patient group"))
            tirads, label = diagnosis.get(p.stem, (None, None))
            records.append(
                Record(id=p.stem, image=p, masks=(m,) if m else (), labeled=True, label=label,
                       group=f"patient{int(match.group('patient'))}" if match else None, spacing=None,
                       anatomy="thyroid", meta=(("tirads", tirads),) if tirads is not None else ())
            )
        for stem in sorted(set(masks) - names, key=natural_key):
            self.problems.append((str(masks[stem]), f"mask without an image; expected '{IMAGE_DIR}/{stem}.png'"))
        return records

    def mask_hint(self, rec: Record) -> str:
        return f"'{MASK_DIR}/{rec.image.stem}.gif'"
