"""`sonokit report RUN_DIR`: one self-contained HTML file (figures embedded as PNG data URIs).

Contents: a metrics table (mean ± std over test images per run, and mean ± std over seeds when the
folder holds several runs of one configuration), training curves from each run's ``metrics.csv``, and an
overlay gallery of the best, median and worst test cases (ground truth green, prediction red).
"""
from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import DataError
from .tables import fmt_mean_std, html_table

_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
.gallery{display:flex;flex-wrap:wrap;gap:12px}.gallery figure{margin:0;width:250px}
figcaption{font-size:12px;color:#555}"""


def figure_png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def find_runs(root: Path) -> list[Path]:
    """Run folders (holding config.yaml) at or below ``root``."""
    runs = sorted({p.parent for p in root.rglob("config.yaml")})
    return runs


def _read_metrics_csv(path: Path) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            ep = row.get("epoch")
            for k in ("train_loss_epoch", "val_loss", "val_dice"):
                if row.get(k) not in (None, "") and ep not in (None, ""):
                    series[k].append((float(ep) + 1, float(row[k])))
    return series


def curves_figure(runs: list[Path]) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = {r: _read_metrics_csv(r / "metrics.csv") for r in runs if (r / "metrics.csv").exists()}
    if not data:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for r, s in data.items():
        label = r.name
        if s.get("train_loss_epoch"):
            x, y = zip(*s["train_loss_epoch"])
            axes[0].plot(x, y, label=f"{label} train")
        if s.get("val_loss"):
            x, y = zip(*s["val_loss"])
            axes[0].plot(x, y, "--", label=f"{label} val")
        if s.get("val_dice"):
            x, y = zip(*s["val_dice"])
            axes[1].plot(x, y, label=label)
    axes[0].set(xlabel="epoch", ylabel="Dice + BCE loss", title="loss")
    axes[1].set(xlabel="epoch", ylabel="Dice", title="validation Dice (model resolution)", ylim=(0, 1))
    for a in axes:
        a.grid(alpha=0.3)
        if len(data) <= 6:
            a.legend(fontsize=7)
    return figure_png(fig)


def _gallery(ev: dict, pred_dir: Path, k: int = 3) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..data import open_dataset
    from ..data.io import read_mask
    from ..evaluation import safe_name

    rows = sorted(ev["rows"], key=lambda r: r["dice"])
    if not rows:
        return []
    n = len(rows)
    picks = {"worst": rows[:k], "median": rows[max(0, n // 2 - k // 2): n // 2 - k // 2 + k], "best": rows[-k:][::-1]}
    try:
        reader = open_dataset(ev["data_root"], ev.get("data_format"))
    except DataError:
        return []
    out = []
    seen = set()
    for kind in ("best", "median", "worst"):
        for r in picks[kind]:
            if r["id"] in seen:
                continue
            seen.add(r["id"])
            p = pred_dir / f"{safe_name(r['id'])}.png"
            if not p.exists():
                continue
            s = reader.get(r["id"])
            pred, _ = read_mask(p)
            fig, ax = plt.subplots(figsize=(3, 3))
            ax.imshow(s.image[0], cmap="gray", vmin=0, vmax=1)
            if s.mask is not None and s.mask.any():
                ax.contour(s.mask[0], levels=[0.5], colors="lime", linewidths=1.2)
            if pred.any():
                ax.contour(pred, levels=[0.5], colors="red", linewidths=1.2)
            ax.axis("off")
            out.append((figure_png(fig), f"{kind}: {r['id']} — Dice {r['dice']:.3f}"))
    return out


def _run_name(run: Path) -> str:
    import yaml

    try:
        return str(yaml.safe_load((run / "config.yaml").read_text()).get("name", run.name))
    except Exception:
        return run.name


def build_report(run_dir: str | Path, out: str | Path | None = None, *, title: str | None = None,
                 extra_html: list[str] | None = None) -> Path:
    """Write ``report.html`` for a run folder (or a folder of runs) and return its path."""
    root = Path(run_dir)
    if not root.is_dir():
        raise DataError(f"run folder '{root}' does not exist")
    runs = find_runs(root)
    if not runs:
        raise DataError(f"no runs (folders with config.yaml) under '{root}'; expected the --out folder of `sonokit train`")
    sections = [f"<h1>{html.escape(title or 'sonokit report: ' + root.name)}</h1>",
                f"<p>Generated {_dt.datetime.now().isoformat(timespec='seconds')} from <code>{html.escape(str(root))}</code>; "
                f"{len(runs)} run(s).</p>", *(extra_html or [])]
    # metrics table
    header = ["run", "evaluation", "images", "Dice", "IoU", "HD95", "precision", "recall"]
    rows, by_cfg = [], defaultdict(list)
    evals: list[tuple[Path, dict]] = []
    for run in runs:
        for ej in sorted((run / "eval").glob("*.json")) if (run / "eval").is_dir() else []:
            ev = json.loads(ej.read_text())
            if not isinstance(ev, dict) or "aggregate" not in ev:  # e.g. time.json: not an evaluation
                continue
            agg = ev["aggregate"]
            evals.append((run, ev))
            rows.append([run.relative_to(root).as_posix() or ".", ev["name"], ev["n"],
                         *(fmt_mean_std(agg[m]["mean"], agg[m]["std"]) + (f" {ev['hd95_unit']}" if m == "hd95" else "")
                           for m in ("dice", "iou", "hd95", "precision", "recall"))])
            by_cfg[(_run_name(run), ev["name"])].append(agg)
    sections.append("<h2>Metrics (mean ± std over images)</h2>")
    sections.append(html_table(header, rows) if rows else "<p>No evaluations yet: run <code>sonokit evaluate</code>.</p>")
    multi = {k: v for k, v in by_cfg.items() if len(v) > 1}
    if multi:
        srows = []
        for (name, ev), aggs in sorted(multi.items()):
            cells = []
            for m in ("dice", "iou", "hd95"):
                v = np.array([a[m]["mean"] for a in aggs if not math.isnan(a[m]["mean"])])
                cells.append(fmt_mean_std(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0) if v.size else "n/a")
            srows.append([name, ev, len(aggs), *cells])
        sections.append("<h2>Over seeds (mean ± std of per-run means)</h2>")
        sections.append(html_table(["config", "evaluation", "runs", "Dice", "IoU", "HD95"], srows))
    curves = curves_figure(runs)
    if curves:
        sections.append(f"<h2>Training curves</h2><img src='{curves}' alt='training curves'>")
    gal = next(((r, e) for r, e in evals if e["name"] == "test"), evals[0] if evals else None)
    if gal:
        run, ev = gal
        figs = _gallery(ev, run / "eval" / f"{ev['name']}_pred")
        if figs:
            sections.append(f"<h2>Gallery: best, median and worst of '{html.escape(ev['name'])}' ({html.escape(run.name)})</h2>"
                            "<p>Ground truth green, prediction red.</p><div class='gallery'>" +
                            "".join(f"<figure><img src='{src}'><figcaption>{html.escape(cap)}</figcaption></figure>"
                                    for src, cap in figs) + "</div>")
    return write_page(Path(out) if out else root / "report.html", "sonokit report", sections)


def write_page(path: str | Path, title: str, sections: list[str]) -> Path:
    """Write one self-contained HTML page (sonokit's style) from HTML fragments; returns its path."""
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_CSS}</style>"
            f"</head><body>{''.join(sections)}</body></html>")
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path
