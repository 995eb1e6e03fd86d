"""HC18 fetal head circumference challenge (van den Heuvel et al., PLoS ONE 2018).

Layout: ``training_set/NNN_HC.png`` (and ``NNN_2HC.png``, ``NNN_3HC.png``: further frames of the same
fetus) with ``NNN_HC_Annotation.png`` holding the head ellipse as a 1-pixel OUTLINE, and
``training_set_pixel_size_and_HC.csv`` with the pixel size in mm. The outline is filled into a head mask
(:func:`fill_outline`); the fetus number ``NNN`` is the group, so frames of one fetus never cross splits.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from ...errors import DataError
from .base import FORMATS, DatasetReader, Record, natural_key

_IMG = re.compile(r"^(?P<fetus>\d+)_(?:(?P<k>\d+))?HC$")


def fill_outline(outline: np.ndarray) -> np.ndarray:
    """Fill a 1-pixel ellipse outline (H, W) into a solid uint8 {0,1} mask.

    Three cases: a closed outline is hole-filled (exact); an annotation that is already a solid region
    (most of its pixels survive a 2-pixel erosion; some redistributed copies of HC18 store filled
    ellipses) is returned as it is; an outline with gaps is replaced by the least-squares ellipse through
    its pixels, rasterised.
    """
    from scipy import ndimage

    outline = outline.astype(bool)
    if not outline.any():
        return np.zeros(outline.shape, np.uint8)
    filled = ndimage.binary_fill_holes(outline)
    if filled.sum() > 2 * outline.sum():
        return filled.astype(np.uint8)
    if ndimage.binary_erosion(outline, iterations=2).sum() > 0.5 * outline.sum():
        return filled.astype(np.uint8)
    from skimage.draw import ellipse
    from skimage.measure import EllipseModel

    rr, cc = np.nonzero(outline)
    pts = np.stack([cc, rr], 1).astype(float)
    if hasattr(EllipseModel, "from_estimate"):  # scikit-image >= 0.26
        model = EllipseModel.from_estimate(pts)
        ok = bool(model)
        if ok:
            (xc, yc), (a, b), theta = model.center, model.axis_lengths, model.theta
    else:
        model = EllipseModel()
        ok = model.estimate(pts)
        if ok:
            xc, yc, a, b, theta = model.params
    if not ok:
        raise DataError("head outline could not be filled or fitted by an ellipse")
    r, c = ellipse(yc, xc, b, a, shape=outline.shape, rotation=-theta)
    out = np.zeros(outline.shape, np.uint8)
    out[r, c] = 1
    return out | outline.astype(np.uint8)


def _training_dir(root: Path) -> Path:
    return root / "training_set" if (root / "training_set").is_dir() else root


@FORMATS.register("hc18")
class HC18Reader(DatasetReader):
    name = "hc18"
    anatomy = "fetal_head"

    @classmethod
    def detect(cls, root: Path) -> bool:
        d = _training_dir(root)
        return d.is_dir() and any(True for _ in d.glob("*_HC_Annotation.png"))

    @classmethod
    def layout_hint(cls) -> str:
        return "training_set/NNN_HC.png with NNN_HC_Annotation.png and training_set_pixel_size_and_HC.csv"

    def index(self) -> list[Record]:
        d = _training_dir(self.root)
        pattern = "training_set_pixel_size*.csv"
        csv_path = next(iter(sorted(self.root.glob(pattern)) + sorted(d.parent.glob(pattern))), None)
        spacing: dict[str, float] = {}
        hc: dict[str, str] = {}
        if csv_path is not None:
            with open(csv_path, newline="") as f:
                for row in csv.DictReader(f):
                    name = row.get("filename", "").strip()
                    try:
                        spacing[name] = float(row.get("pixel size(mm)", "nan"))
                    except ValueError:
                        self.problems.append((str(csv_path), f"pixel size of '{name}' is not a number"))
                    hc[name] = row.get("head circumference (mm)", "")
        else:
            self.problems.append((str(self.root), "training_set_pixel_size_and_HC.csv not found; spacing unknown"))
        records = []
        for p in sorted(d.glob("*HC.png"), key=lambda q: natural_key(q.name)):
            m = _IMG.match(p.stem)
            if not m:
                continue
            ann = p.with_name(p.stem + "_Annotation.png")
            if not ann.exists():
                self.problems.append((str(p), f"missing annotation; expected '{ann.name}'"))
            sp = spacing.get(p.name)
            meta = (("head_circumference_mm", hc[p.name]),) if hc.get(p.name) else ()
            records.append(
                Record(id=p.stem, image=p, masks=(ann,) if ann.exists() else (), label=None,
                       group=f"fetus{m.group('fetus')}", spacing=(sp, sp) if sp else None,
                       anatomy="fetal_head", meta=meta)
            )
        return records

    def mask_hint(self, rec: Record) -> str:
        return f"'{rec.image.stem}_Annotation.png'"

    def finish_mask(self, mask: np.ndarray) -> np.ndarray:
        return fill_outline(mask)
