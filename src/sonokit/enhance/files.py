"""``sonokit enhance``'s per-file work: the enhancement function its options describe, and one input file
(an image, or every frame of a DICOM file) read, enhanced and written.

Outputs in the output folder: ``NAME_enhanced.png`` (8-bit gray) per image or DICOM frame (``NAME_fK`` for
frame K of a multi-frame file; names from :mod:`sonokit.data.inputs`) and, for DICOM input,
``NAME_enhanced.dcm`` (:func:`sonokit.data.dicom_write.write_derived_dicom`: all frames, 8-bit MONOCHROME2).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..data.inputs import InputItem, read_input
from ..errors import ConfigError
from .models import Enhancer

REFINE = ("none", "nllr-wiener")
_CONVERTED = {"colour": "RGB to gray (luma)", "bit_depth": "16-bit to [0, 1]"}


def enhance_fn(net: Enhancer, *, tile: int = 256, overlap: int = 64, refine: str = "none",
               guide_weight: float | None = None, max_side: int | None = None,
               ) -> Callable[[np.ndarray], np.ndarray]:
    """(H, W) float image in [0, 1] -> enhanced (H, W) float32, as ``sonokit enhance`` runs it: tiled above
    ``tile`` pixels (:func:`sonokit.enhance.inference.enhance_image`), optionally refined by NLLR + Wiener
    filtering guided by the network (``refine="nllr-wiener"``, :class:`sonokit.enhance.hybrid.GuidedNLLRWiener`
    with ``guide_weight``, default its tuned weight), at the pixel scale ``max_side`` when given
    (:func:`sonokit.enhance.inference.at_scale`). Options are checked here (:class:`ConfigError`)."""
    from .inference import at_scale, enhance_image

    m = net.multiple
    if tile < 1 or tile % m:
        raise ConfigError(f"--tile {tile} must be a positive multiple of {m} for model '{net.name}'; "
                          f"try --tile {max(m, (tile // m) * m)}")
    if not 0 <= overlap < tile:
        raise ConfigError(f"--overlap must be in [0, tile) = [0, {tile}); found {overlap}")
    if refine not in REFINE:
        raise ConfigError(f"--refine must be none or nllr-wiener, found '{refine}'")
    if guide_weight is None:
        from .hybrid import GUIDE_WEIGHT

        guide_weight = GUIDE_WEIGHT
    if not 0 <= guide_weight <= 1:
        raise ConfigError(f"--guide-weight must be in [0, 1], found {guide_weight}")
    if refine == "nllr-wiener":
        from .hybrid import GuidedNLLRWiener

        fn = GuidedNLLRWiener(net, guide_weight=guide_weight, tile=tile, overlap=overlap)
    else:
        def fn(x):
            return enhance_image(net, x, tile=tile, overlap=overlap)

    def run(image: np.ndarray) -> np.ndarray:
        return at_scale(fn, image, max_side)
    return run


def enhance_to_files(items: list[InputItem], run: Callable[[np.ndarray], np.ndarray], out: Path, *,
                     tile: int = 256, max_side: int | None = None) -> str:
    """Enhance the items of ONE file with ``run`` (from :func:`enhance_fn`) and write their outputs into
    ``out``; returns the line to report. Raises :class:`~sonokit.errors.DataError` (or ``ValueError``) for a
    bad input; a DICOM file is written only when all its frames were enhanced."""
    from ..data.dicom_write import write_derived_dicom
    from ..data.io import to_uint8, write_gray_png

    first = items[0]
    if first.dicom:
        frames = []
        for it in items:
            frames.append(to_uint8(run(read_input(it).image)))
            write_gray_png(out / f"{it.name}_enhanced.png", frames[-1])
        write_derived_dicom(first.path, frames, out / f"{first.base}_enhanced.dcm")
        H, W = frames[0].shape
        return f"{first.rel}: {len(frames)} frame(s) of {W}x{H} px -> {first.base}_enhanced.dcm"
    inp = read_input(first)
    H, W = inp.image.shape
    write_gray_png(out / f"{first.name}_enhanced.png", to_uint8(run(inp.image)))
    notes = [_CONVERTED[k] for k in _CONVERTED if k in inp.info]
    return (f"{first.rel}: {W}x{H} px" + (" (tiled)" if min(max(H, W), max_side or max(H, W)) > tile else "")
            + (" (converted: " + ", ".join(notes) + ")" if notes else "") + f" -> {first.name}_enhanced.png")
