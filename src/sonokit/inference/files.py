"""``sonokit segment``'s per-image work: read one input, segment it, write its files.

Outputs in the output folder, per input ``NAME`` (see :mod:`sonokit.data.inputs` for the names):
``NAME_mask.png`` (0/255), ``NAME_overlay.png`` (the mask tinted over the image; for a large image, see
:mod:`sonokit.inference.segmenter`, downscaled to at most :data:`~sonokit.reports.overlay.OVERLAY_MAX_SIDE`
pixels on its long side) and, on request, ``NAME_prob.png`` (probability x 255) and, with ``save_uncertainty``,
the model's extra maps when it returns them (SF-RecSAM with a corrector; :data:`EXTRA_FILES`), all at the
input's size: ``NAME_uncertainty.png`` (uncertainty in [0, 1] x 255), ``NAME_fp.png`` / ``NAME_fn.png`` (the
false-positive / false-negative corrector's probability x 255), ``NAME_initial.png`` (the probability before
correction x 255).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.inputs import InputItem, read_input
from ..data.io import write_gray_png, write_map_png, write_png
from .extras import EXTRA_OUTPUTS

EXTRA_FILES = tuple(name for name, _ in EXTRA_OUTPUTS.values())  # NAME_<map>.png, in this order


@dataclass
class SegmentedImage:
    """What :func:`segment_to_files` did, for the command's report line."""

    name: str
    height: int
    width: int
    foreground: float  # fraction of pixels
    max_prob: float
    area_mm2: float | None  # when the input records its pixel spacing (DICOM)
    large: bool
    overlay_size: tuple[int, int]  # (h, w) of the overlay written
    extras: tuple[str, ...] = ()  # the extra maps written (NAME_<map>.png)
    hc: float | None = None  # head circumference (fetal-head models), in mm when the spacing is known, else px
    hc_unit: str = "px"

    def line(self) -> str:
        size = f"{self.width}x{self.height} px"
        if self.large:
            size += (f" (large image: reduced in row chunks for the model; overlay written at "
                     f"{self.overlay_size[1]}x{self.overlay_size[0]} px)")
        mm = f", {self.area_mm2:.1f} mm²" if self.area_mm2 is not None else ""
        if self.hc is not None:
            mm += f", head circumference {self.hc:.1f} {self.hc_unit}" if self.hc == self.hc else \
                ", head circumference: no head found"
        more = f"; wrote {', '.join(f'{self.name}_{k}.png' for k in self.extras)}" if self.extras else ""
        return (f"{self.name}: {size}, foreground {100 * self.foreground:.2f}%{mm}, "
                f"max probability {self.max_prob:.3f}{more}")


    def row(self) -> dict:
        """The line's facts for ``segmentation.csv``."""
        return {"name": self.name, "width": self.width, "height": self.height,
                "foreground_percent": round(100 * self.foreground, 4), "max_prob": round(self.max_prob, 4),
                "area_mm2": "" if self.area_mm2 is None else round(self.area_mm2, 2),
                "head_circumference": "" if self.hc is None else round(self.hc, 2),
                "head_circumference_unit": self.hc_unit if self.hc is not None else ""}


def measures_head(hparams: dict) -> bool:
    """Whether ``sonokit segment`` reports head circumferences for this model: a shipped fetal-head model
    (``measure: head_circumference`` in the zoo index) or one trained on HC18 (``data.format: hc18``)."""
    hp = hparams or {}
    return hp.get("measure") == "head_circumference" or (hp.get("data") or {}).get("format") == "hc18"


def write_rows(path: Path, rows: list[dict]) -> None:
    """``rows`` (same keys) as a CSV file, written atomically."""
    import csv
    import io

    from ..data.io import atomic_write

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, lambda tmp: Path(tmp).write_text(buf.getvalue()))


def segment_to_files(seg, item: InputItem, out: Path, *, save_prob: bool = False,
                     save_uncertainty: bool = False, measure_hc: bool = False,
                     pixel_size: float | None = None) -> SegmentedImage:
    """Read ``item`` (large images without a float copy), segment it with ``seg`` (a
    :class:`~.segmenter.Segmenter` or :class:`~.lite.LiteSegmenter`) and write its files into
    ``out`` (``save_uncertainty``: also the model's extra maps, when it has any). ``measure_hc``: also the head
    circumference of the mask (:func:`sonokit.metrics.ellipse.head_circumference`), in mm from the input's
    spacing (DICOM) or ``pixel_size`` (mm per pixel, which wins), else in pixels. Raises
    :class:`~sonokit.errors.DataError` (or ``ValueError``) for a bad input."""
    from PIL import Image

    from ..data.io import atomic_write
    from ..reports.overlay import overlay, overlay_downscaled

    inp = read_input(item, lowmem_above=seg.large_threshold)
    res = seg.segment(inp.image, extras=save_uncertainty)
    image = inp.image.reshape(inp.image.shape[-2:])
    H, W = image.shape
    write_png(out / f"{item.name}_mask.png", res.mask)
    ov = overlay_downscaled(image, res.mask) if res.large else overlay(image, res.mask)
    atomic_write(out / f"{item.name}_overlay.png", lambda tmp: Image.fromarray(ov).save(tmp, format="PNG"))
    if save_prob:
        (write_gray_png if res.prob.dtype == np.uint8 else write_png)(out / f"{item.name}_prob.png", res.prob)
    for k in EXTRA_FILES:
        if k in res.extras:
            write_map_png(out / f"{item.name}_{k}.png", res.extras[k])
    sp = (pixel_size, pixel_size) if pixel_size else inp.spacing
    area = res.foreground * H * W * sp[0] * sp[1] if sp else None
    hc = None
    if measure_hc:
        from ..metrics.ellipse import head_circumference

        hc = head_circumference(res.mask, sp)
    return SegmentedImage(item.name, H, W, res.foreground, res.max_prob, area, res.large, ov.shape[:2],
                          tuple(k for k in EXTRA_FILES if k in res.extras), hc, "mm" if sp else "px")

