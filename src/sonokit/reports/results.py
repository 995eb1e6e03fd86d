"""Metrics tables of a report, by task, and the confusion-matrix figures of classification evaluations.

Per evaluation: segmentation metrics as mean ± std over its images; classification accuracy, balanced
accuracy, AUROC and per-class recall. Over runs of one configuration (config ``name``, any seed): mean ± std of
the per-run values, where a configuration with one run shows ``(n = 1)`` rather than a std of zero.
"""
from __future__ import annotations

import html
import math
from collections import defaultdict

import numpy as np

from .runinfo import Run
from .tables import fmt_mean_std, html_table

SEG_METRICS = ("dice", "iou", "hd95", "precision", "recall")
SEG_NAMES = {"dice": "Dice", "iou": "IoU", "hd95": "HD95", "precision": "precision", "recall": "recall"}
CLS_METRICS = ("accuracy", "balanced_accuracy", "auroc")
CLS_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "auroc": "AUROC"}


def _evals(runs: list[Run], task: str) -> list[tuple[Run, dict]]:
    from .runinfo import eval_task

    return [(r, ev) for r in runs for ev in r.evals if eval_task(ev) == task]


def over_runs(values: list[float], digits: int = 3) -> str:
    """Mean ± std (ddof 1) of per-run values; ``(n = 1)`` for one run; NaNs (undefined) left out."""
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if not v.size:
        return "n/a"
    return fmt_mean_std(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, digits, n=int(v.size))


def _over_runs_table(pairs: list[tuple[Run, dict]], metrics: tuple[str, ...], names: dict, value) -> str:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run, ev in pairs:
        groups[(run.name, ev["name"])].append(ev)
    rows = [[name, evname, len(evs), *(over_runs([value(ev, m) for ev in evs], 1 if m == "hd95" else 3)
                                       for m in metrics)]
            for (name, evname), evs in sorted(groups.items())]
    return ("<h3>Over runs (mean ± std of the per-run values, over seeds)</h3>"
            + html_table(["config", "evaluation", "runs", *(names[m] for m in metrics)], rows))


def segmentation_section(runs: list[Run]) -> str:
    pairs = _evals(runs, "segment")
    if not pairs:
        return ""
    rows = []
    for run, ev in pairs:
        agg = ev["aggregate"]
        cells = []
        for m in SEG_METRICS:
            a = agg.get(m) or {}
            unit = f" {ev.get('hd95_unit', 'px')}" if m == "hd95" and a.get("mean") is not None else ""
            cells.append(fmt_mean_std(a.get("mean"), a.get("std", math.nan), 1 if m == "hd95" else 3,
                                      n=a.get("n")) + unit)
        rows.append([run.label, ev["name"], ev.get("n", "?"), *cells])
    out = ["<h2>Segmentation (mean ± std over the images of each evaluation)</h2>",
           html_table(["run", "evaluation", "images", *(SEG_NAMES[m] for m in SEG_METRICS)], rows)]
    undefined = [(run.label, ev["name"], ev["hd95_undefined"]) for run, ev in pairs if ev.get("hd95_undefined")]
    if undefined:
        out.append("<p>HD95 undefined (an empty mask) and left out for: " + "; ".join(
            f"{html.escape(lb)} / {html.escape(e)}: {k} images" for lb, e, k in undefined) + ".</p>")
    units = {ev.get("hd95_unit", "px") for _, ev in pairs}
    names = {**SEG_NAMES, "hd95": f"HD95 ({units.pop()})" if len(units) == 1 else "HD95 (mm or px)"}
    out.append(_over_runs_table(pairs, ("dice", "iou", "hd95"), names,
                                lambda ev, m: (ev["aggregate"].get(m) or {}).get("mean", math.nan)))
    return "".join(out)


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def classification_section(runs: list[Run]) -> str:
    pairs = _evals(runs, "classify")
    if not pairs:
        return ""
    classes = list(dict.fromkeys(c for _, ev in pairs for c in ev.get("classes") or ev.get("recall", {})))
    rows = [[run.label, ev["name"], ev.get("n", "?"), *(_fmt(ev["metrics"].get(m)) for m in CLS_METRICS),
             *(_fmt(ev.get("recall", {}).get(c)) for c in classes)] for run, ev in pairs]
    out = ["<h2>Classification</h2>",
           html_table(["run", "evaluation", "images", *(CLS_NAMES[m] for m in CLS_METRICS),
                       *(f"recall {c}" for c in classes)], rows),
           _over_runs_table(pairs, CLS_METRICS, CLS_NAMES, lambda ev, m: ev["metrics"].get(m, math.nan))]
    figs = [(confusion_figure(ev["confusion"], ev.get("classes") or classes, f"{run.label}\n{ev['name']}"),
             f"confusion matrix: {run.label} / {ev['name']}") for run, ev in pairs]
    out.append("<h3>Confusion matrices (rows: true class, columns: predicted class; counts of images)</h3>"
               "<div class='gallery'>" + "".join(
                   f"<figure><img src='{src}' alt='{html.escape(alt)}'><figcaption>{html.escape(alt)}</figcaption>"
                   "</figure>" for src, alt in figs) + "</div>")
    return "".join(out)


def confusion_figure(confusion: list[list[int]], classes: list[str], title: str) -> str:
    """A confusion matrix (rows true, columns predicted) as a PNG data URI: counts in the cells, class names
    on the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .figures import figure_png

    cm = np.asarray(confusion, dtype=float)
    k = len(cm)
    names = list(classes)[:k] + [str(i) for i in range(len(classes), k)]
    fig, ax = plt.subplots(figsize=(1.1 * k + 2.2, 1.0 * k + 1.8))
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(1.0, cm.max()))
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{cm[i, j]:g}", ha="center", va="center", fontsize=11,
                    color="white" if cm[i, j] > 0.6 * cm.max() else "black")
    long = max((len(n) for n in names), default=0) > 8
    ax.set_xticks(range(k), names, rotation=30 if long else 0, ha="right" if long else "center", fontsize=9)
    ax.set_yticks(range(k), names, fontsize=9)
    ax.set_xlabel("predicted class", fontsize=10)
    ax.set_ylabel("true class", fontsize=10)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return figure_png(fig, dpi=100)
