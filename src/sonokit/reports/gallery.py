"""Ground truth beside prediction: the report's case gallery and the overlays ``sonokit evaluate`` writes.

Each case is three panels of the same image: the image alone, the ground-truth mask (green) and the
predicted mask (red), tinted with their outlines drawn (:func:`sonokit.reports.overlay.overlay`).
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

GT_COLOR = (0.15, 0.85, 0.15)
PRED_COLOR = (1.0, 0.2, 0.2)
PANEL_NAMES = ("image", "ground truth", "prediction")


def _fit(a: np.ndarray, side: int) -> np.ndarray:
    """Nearest-neighbour upscale of a (h, w, 3) panel by an integer factor so its long side reaches ``side``."""
    f = max(1, -(-side // max(a.shape[:2])))
    return a if f == 1 else a.repeat(f, axis=0).repeat(f, axis=1)


def case_panels(image: np.ndarray, gt: np.ndarray | None, pred: np.ndarray, *, max_side: int = 2048,
                min_side: int = 0) -> list[np.ndarray]:
    """Image (H, W) or (1, H, W) in [0, 1] (or uint8 / uint16), ground truth (None when unknown) and
    prediction, each (H, W) or (1, H, W) -> RGB uint8 panels: image, ground truth (green; left out when
    unknown), prediction (red). Panels larger than ``max_side`` are area-reduced to it; smaller than
    ``min_side`` are upscaled by an integer factor."""
    from .overlay import overlay_downscaled

    pred = np.asarray(pred).astype(bool)
    pred = pred[0] if pred.ndim == 3 else pred
    if pred.shape != image.shape[-2:]:
        raise ValueError(f"prediction is {pred.shape[1]}x{pred.shape[0]} but its image is "
                         f"{image.shape[-1]}x{image.shape[-2]}; expected equal sizes")
    img = image[0] if image.ndim == 3 else image
    panels = [overlay_downscaled(img, np.zeros_like(pred), max_side=max_side)]
    if gt is not None:
        gt = np.asarray(gt).astype(bool)
        gt = gt[0] if gt.ndim == 3 else gt
        panels.append(overlay_downscaled(img, gt, max_side=max_side, color=GT_COLOR))
    panels.append(overlay_downscaled(img, pred, max_side=max_side, color=PRED_COLOR))
    return [_fit(p, min_side) for p in panels]


def side_by_side(panels: list[np.ndarray], *, gap: int = 4) -> np.ndarray:
    """Panels of one height side by side, separated by ``gap`` white columns: (H, sum W + gaps, 3) uint8."""
    h = panels[0].shape[0]
    white = np.full((h, gap, 3), 255, np.uint8)
    out = [panels[0]]
    for p in panels[1:]:
        out += [white, p]
    return np.concatenate(out, axis=1)


def write_overlay(path: str | Path, image: np.ndarray, gt: np.ndarray | None, pred: np.ndarray) -> Path:
    """Write ``image | ground truth | prediction`` side by side as one PNG (atomically); returns its path."""
    from PIL import Image

    from ..data.io import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    strip = side_by_side(case_panels(image, gt, pred))
    atomic_write(path, lambda tmp: Image.fromarray(strip).save(tmp, format="PNG"))
    return path


def png_uri(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def pick_cases(rows: list[dict], k: int = 3) -> list[tuple[str, dict]]:
    """``[(kind, row)]``: the ``k`` best, median and worst rows by Dice (each case once)."""
    rows = sorted((r for r in rows if r.get("dice") is not None), key=lambda r: r["dice"])
    n = len(rows)
    mid = max(0, n // 2 - k // 2)
    picks = [("best", r) for r in rows[-k:][::-1]] + [("median", r) for r in rows[mid:mid + k]] + \
        [("worst", r) for r in rows[:k]]
    seen, out = set(), []
    for kind, r in picks:
        if r["id"] not in seen:
            seen.add(r["id"])
            out.append((kind, r))
    return out


def read_prediction(path: Path) -> np.ndarray:
    """A predicted mask as ``evaluate`` writes it (0 / 255): bool (H, W). Read as written rather than through
    :func:`sonokit.data.io.read_mask`, which takes a single-valued file (an all-foreground prediction) as empty."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L")) >= 128


def case_row(case_id: str, caption: str, panels: list[np.ndarray], *, empty: tuple[bool, ...] = ()) -> str:
    """One case: its caption over its panels; ``empty`` flags the panels whose mask is empty (said below them)."""
    names = PANEL_NAMES if len(panels) == 3 else ("image", "prediction")
    names = [nm + (" (empty)" if i < len(empty) and empty[i] else "") for i, nm in enumerate(names)]
    figs = "".join(f"<figure><img src='{png_uri(p)}' alt='{html.escape(nm)}: {html.escape(case_id)}'>"
                   f"<figcaption>{html.escape(nm)}</figcaption></figure>" for nm, p in zip(names, panels))
    return f"<div class='case'><p>{html.escape(caption)}</p><div class='panels'>{figs}</div></div>"


def gallery_section(ev: dict, title: str, *, k: int = 3, side: int = 200) -> str:
    """The best, median and worst cases of a segmentation evaluation (its predictions in ``<name>_pred/``),
    one row of panels each; a note instead when the images or predictions are not there any more."""
    from ..data import open_dataset
    from ..data.io import safe_name
    from ..errors import DataError

    head = (f"<h3>{html.escape(title)}</h3><p>Each row: the image, the ground truth (green) and the prediction "
            "(red); best, median and worst cases by Dice.</p>")
    pred_dir = Path(ev["_file"]).parent / f"{ev['name']}_pred"
    try:
        reader = open_dataset(ev["data_root"], ev.get("data_format"))
    except (DataError, KeyError, OSError) as e:
        return head + f"<p>No gallery: the images are not readable now ({html.escape(str(e))}).</p>"
    rows = []
    for kind, r in pick_cases(ev.get("rows") or [], k):
        p = pred_dir / f"{safe_name(r['id'])}.png"
        if not p.exists():
            continue
        try:
            s = reader.get(r["id"])
            pred = read_prediction(p)
            panels = case_panels(s.image, s.mask, pred, max_side=2 * side, min_side=side)
        except (DataError, OSError, ValueError):
            continue
        empty = (False, *(() if s.mask is None else (not s.mask.any(),)), not pred.any())
        rows.append(case_row(r["id"], f"{kind}: {r['id']} — Dice {r['dice']:.3f}", panels, empty=empty))
    if not rows:
        return head + f"<p>No gallery: no predicted masks in <code>{html.escape(str(pred_dir))}</code>.</p>"
    return head + "<div class='cases'>" + "".join(rows) + "</div>"
