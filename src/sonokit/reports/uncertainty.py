"""The report's uncertainty overlays: a model's uncertainty and FP / FN correction maps for the gallery cases.

``sonokit evaluate --save-uncertainty`` writes, beside the predicted masks, the maps a model returns besides
its logits (SF-RecSAM's corrector: :data:`sonokit.inference.segmenter.EXTRA_OUTPUTS`) as 8-bit PNGs in [0, 1]
x 255, at each image's original size: ``<name>_uncertainty/<id>.png``, ``<name>_fp/<id>.png``,
``<name>_fn/<id>.png``. For the same best, median and worst cases as the gallery, one row each:

* the image with the ground truth (green outline) and the prediction (red outline);
* the uncertainty as a heat-map over the image (``inferno``: black certain, yellow uncertain), with the
  prediction's outline;
* the FP map (the corrector's estimate that a predicted-foreground pixel is background) tinted red, and the FN
  map (that a predicted-background pixel is foreground) tinted blue, each over the image;

and a caption with the mean uncertainty on the pixels the prediction gets wrong and on those it gets right (a
useful uncertainty is higher on the wrong ones). Maps the evaluation lacks are left out; without any the
section is empty.
"""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np

MAPS = ("uncertainty", "fp", "fn")  # the file names of inference's extra maps (sonokit.inference.files.EXTRA_FILES)
TITLES = {"uncertainty": "uncertainty", "fp": "FP map (red)", "fn": "FN map (blue)"}
TINTS = {"fp": (1.0, 0.15, 0.1), "fn": (0.1, 0.35, 1.0)}
ALPHA = 0.85  # a tinted map's opacity at value 1
HEAT_OPACITY = 0.7  # the uncertainty colour map's opacity over the image (dark: certain, bright: uncertain)


def available_maps(ev: dict) -> list[str]:
    """The extra maps an evaluation wrote (folders ``<name>_<map>/`` beside its json), in :data:`MAPS` order."""
    base = Path(ev["_file"]).parent
    return [k for k in MAPS if (base / f"{ev['name']}_{k}").is_dir()]


def read_map(path: Path) -> np.ndarray:
    """An extra map as written (0-255 gray PNG) -> float32 (H, W) in [0, 1]."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def _shrink(a: np.ndarray, max_side: int) -> np.ndarray:
    """(H, W) float in [0, 1] (or bool / uint) area-reduced to at most ``max_side`` on its long side."""
    from ..data.resample import area_resize, unit_scale

    H, W = a.shape
    s = min(1.0, max_side / max(H, W))
    if s == 1.0:
        return a.astype(np.float32) * np.float32(unit_scale(a.dtype)) if a.dtype.kind in "ub" else a
    return area_resize(a, max(1, round(H * s)), max(1, round(W * s)))


def _outline(rgb: np.ndarray, mask: np.ndarray, color) -> np.ndarray:
    from scipy import ndimage

    edge = mask & ~ndimage.binary_erosion(mask, iterations=max(1, round(max(mask.shape) / 300)))
    rgb[edge] = np.asarray(color, np.float32)
    return rgb


def heat_panel(image: np.ndarray, heat: np.ndarray, pred: np.ndarray, *, tint=None) -> np.ndarray:
    """Gray image (H, W) in [0, 1], a map (H, W) in [0, 1] and the prediction (H, W) bool -> (H, W, 3) uint8:
    without ``tint``, the map's ``inferno`` colours over the image at opacity :data:`HEAT_OPACITY` (0 black,
    1 bright yellow); with a ``tint``, that colour at opacity ``ALPHA * value`` (0: the image unchanged); the
    prediction's outline in white."""
    heat = np.clip(heat, 0.0, 1.0).astype(np.float32)
    gray = np.repeat(image[..., None], 3, axis=-1).astype(np.float32)
    if tint is None:
        from matplotlib import colormaps

        colour = colormaps["inferno"](heat)[..., :3].astype(np.float32)
        rgb = (1 - HEAT_OPACITY) * gray + HEAT_OPACITY * colour
    else:
        a = (ALPHA * heat)[..., None]
        rgb = (1 - a) * gray + a * np.asarray(tint, np.float32)
    rgb = _outline(rgb, pred, (1.0, 1.0, 1.0))
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def case_maps(image: np.ndarray, gt: np.ndarray | None, pred: np.ndarray, maps: dict[str, np.ndarray], *,
              max_side: int = 400, min_side: int = 0) -> list[tuple[str, np.ndarray]]:
    """``[(title, RGB panel)]``: the image with the ground truth (green) and prediction (red) outlines, then one
    heat-map per entry of ``maps`` (keys of :data:`MAPS`, each (H, W) in [0, 1] at the image's size)."""
    from .gallery import GT_COLOR, PRED_COLOR, _fit

    img = _shrink(image[0] if image.ndim == 3 else image, max_side)
    size = img.shape
    pred_s = _shrink(np.asarray(pred).astype(bool), max_side) >= 0.5
    first = np.repeat(img[..., None], 3, axis=-1).astype(np.float32)
    if gt is not None:
        g = np.asarray(gt).astype(bool)
        first = _outline(first, _shrink(g[0] if g.ndim == 3 else g, max_side) >= 0.5, GT_COLOR)
    first = _outline(first, pred_s, PRED_COLOR)
    panels = [("image: truth (green), prediction (red)", (np.clip(first, 0, 1) * 255).astype(np.uint8))]
    for k, m in maps.items():
        m_s = _shrink(m, max_side)
        if m_s.shape != size:
            raise ValueError(f"{k} map is {m.shape[1]}x{m.shape[0]} but its image is {image.shape[-1]}x{image.shape[-2]}")
        panels.append((TITLES.get(k, k), heat_panel(img, m_s, pred_s, tint=TINTS.get(k))))
    return [(t, _fit(p, min_side)) for t, p in panels]


def error_uncertainty(u: np.ndarray, gt: np.ndarray, pred: np.ndarray) -> tuple[float | None, float | None]:
    """Mean uncertainty on the wrongly and on the correctly predicted pixels (None where there are none)."""
    wrong = np.asarray(gt).astype(bool).reshape(u.shape) != np.asarray(pred).astype(bool).reshape(u.shape)
    mean = lambda sel: float(u[sel].mean()) if sel.any() else None
    return mean(wrong), mean(~wrong)


def uncertainty_section(ev: dict, title: str, *, k: int = 3, side: int = 200) -> str:
    """The rows of the module docstring for a segmentation evaluation, or '' when it wrote no extra maps."""
    from ..data import open_dataset
    from ..data.io import safe_name
    from ..errors import DataError
    from .gallery import pick_cases, png_uri, read_prediction

    names = available_maps(ev)
    if not names:
        return ""
    base = Path(ev["_file"]).parent
    head = (f"<h3>{html.escape(title)}</h3><p>The model's own maps (<code>sonokit evaluate --save-uncertainty"
            "</code>) for the gallery's cases: the uncertainty as a heat-map (black: certain, yellow: uncertain) and "
            "the corrector's false-positive (red) and false-negative (blue) maps, each over the image with the "
            "prediction outlined in white. <i>u wrong / u right</i>: the mean uncertainty on the pixels the "
            "prediction gets wrong / right.</p>")
    try:
        reader = open_dataset(ev["data_root"], ev.get("data_format"))
    except (DataError, KeyError, OSError) as e:
        return head + f"<p>No uncertainty overlays: the images are not readable now ({html.escape(str(e))}).</p>"
    rows = []
    for kind, r in pick_cases(ev.get("rows") or [], k):
        sid = safe_name(r["id"])
        files = {m: base / f"{ev['name']}_{m}" / f"{sid}.png" for m in names}
        pred_file = base / f"{ev['name']}_pred" / f"{sid}.png"
        if not pred_file.exists() or not all(f.exists() for f in files.values()):
            continue
        try:
            s = reader.get(r["id"])
            pred = read_prediction(pred_file)
            maps = {m: read_map(f) for m, f in files.items()}
            panels = case_maps(s.image, s.mask, pred, maps, max_side=side, min_side=side)
        except (DataError, OSError, ValueError):
            continue
        caption = f"{kind}: {r['id']} — Dice {r['dice']:.3f}"
        if "uncertainty" in maps and s.mask is not None:
            uw, ur = error_uncertainty(maps["uncertainty"], s.mask[0] if s.mask.ndim == 3 else s.mask, pred)
            fmt = lambda v: "—" if v is None else f"{v:.3f}"
            caption += f"; u wrong {fmt(uw)}, u right {fmt(ur)}"
        figs = "".join(f"<figure><img src='{png_uri(p)}' alt='{html.escape(t)}: {html.escape(r['id'])}'>"
                       f"<figcaption>{html.escape(t)}</figcaption></figure>" for t, p in panels)
        rows.append(f"<div class='case'><p>{html.escape(caption)}</p><div class='panels'>{figs}</div></div>")
    if not rows:
        return head + "<p>No uncertainty overlays: the maps or predicted masks of the gallery's cases are missing.</p>"
    return head + "<div class='cases'>" + "".join(rows) + "</div>"
