"""Training curves from each run's ``metrics.csv`` (one row per epoch): one figure per task and sweep folder.

A fine-tuning figure has a loss panel (train solid, val dashed) and a panel per validation metric of the task
(segmentation: Dice; classification: balanced accuracy; enhancement: PSNR and SSIM, with the degraded
input's score dotted). Pretraining runs get
their own figure, one panel per loss term, so their losses never share an axis with fine-tuning losses.
Each curve is labelled with its run's label (config ``name`` and ``seed``), never its folder name.
"""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from .runinfo import Run

# task -> [(metrics.csv column or "loss", y label, y limits or None)]
PANELS: dict[str, list[tuple[str, str, tuple[float, float] | None]]] = {
    "segment": [("loss", "loss", None), ("val_dice", "validation Dice", (0.0, 1.0))],
    "classify": [("loss", "loss", None), ("val_balanced_accuracy", "validation balanced accuracy", (0.0, 1.0))],
    "enhance": [("loss", "loss", None), ("val_psnr", "validation PSNR (dB)", None), ("val_ssim", "validation SSIM", None)],
}
TASK_TITLES = {"pretrain": "Pretraining", "segment": "Segmentation", "classify": "Classification",
               "enhance": "Enhancement"}
TASK_ORDER = ("pretrain", "segment", "classify", "enhance")
REFERENCE = {"val_psnr": "val_psnr_input", "val_ssim": "val_ssim_input"}  # the degraded input's score, dotted
LEGEND_INSIDE_MAX = 3  # more runs than this: the run legend goes outside, right of the panels


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """``metrics.csv`` -> ``{column: [(epoch (1-based), value), ...]}``, NaN and empty cells left out.

    Reads the one-row-per-epoch files of :class:`sonokit.runs.callbacks.RunState`, and older Lightning
    CSVLogger files (``*_epoch`` columns, ``*_step`` rows), keeping the last value logged for each epoch."""
    by_epoch: dict[str, dict[int, float]] = defaultdict(dict)
    try:
        f = open(path, newline="")
    except OSError:
        return {}
    with f:
        for row in csv.DictReader(f):
            ep = row.get("epoch")
            if ep in (None, ""):
                continue
            for k, v in row.items():
                if k in (None, "epoch", "step", "seconds") or k.endswith("_step") or v in (None, ""):
                    continue
                try:
                    x = float(v)
                except ValueError:
                    continue
                if math.isfinite(x):
                    by_epoch[k.removesuffix("_epoch")][int(float(ep)) + 1] = x
    return {k: sorted(d.items()) for k, d in by_epoch.items()}


def panels_for(task: str, series: list[dict]) -> list[tuple[str, str, tuple[float, float] | None]]:
    """The panels of a figure for runs of ``task`` whose metrics are ``series``."""
    keys = set().union(*(s.keys() for s in series)) if series else set()
    if task == "pretrain":  # the total, then each loss term the method logs
        terms = sorted(k for k in keys if k.startswith("train_") and k != "train_loss")
        return [("train_loss", "total loss", None)] * ("train_loss" in keys) + \
            [(k, f"{k.removeprefix('train_')} loss", None) for k in terms]
    panels = PANELS.get(task)
    if panels is None:  # another task: its loss and whatever it validates
        panels = [("loss", "loss", None)] + [(k, k.replace("_", " "), None) for k in sorted(keys)
                                             if k.startswith("val_") and k != "val_loss"][:2]
    return [p for p in panels if p[0] == "loss" or p[0] in keys]


def _style_axis(ax, xlabel: str, ylabel: str, epochs: int) -> None:
    """Labels and ticks: whole epochs on x (each epoch up to 12, with a margin so one epoch reads as '1')."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel(xlabel, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=10)
    if epochs <= 12:
        ax.set_xticks(range(1, epochs + 1))
        ax.set_xlim(0.5, epochs + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.tick_params(labelsize=9)
    ax.grid(alpha=0.3)


def run_colors(runs: list[Run]) -> list[tuple]:
    """One colour per run; the seeds of one configuration (config ``name``) share a hue, lighter per seed."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r.name for r in runs))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    seen: dict[str, int] = {}
    out = []
    for r in runs:
        k = seen[r.name] = seen.get(r.name, -1) + 1
        base = np.array(cmap(names.index(r.name) % cmap.N)[:3])
        light = min(0.6, 0.25 * k)  # mixed with white
        out.append((*(base + (1 - base) * light), 1.0))
    return out


def curves_figure(runs: list[Run], task: str, title: str) -> str | None:
    """One figure (PNG data URI) of the curves of ``runs`` (all of ``task``), or None when none has metrics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .figures import figure_png

    data = [(r, read_metrics(r.path / "metrics.csv")) for r in runs]
    data = [(r, s) for r, s in data if s]
    if not data:
        return None
    panels = panels_for(task, [s for _, s in data])
    if not panels:
        return None
    ncols = 2 if len(panels) == 4 else min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 3.3 * nrows + 0.3), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.remove()
    axes = axes.flat[:len(panels)]
    colors = run_colors([r for r, _ in data])
    handles = []
    for i, (run, s) in enumerate(data):
        color = colors[i]
        for ax, (key, _, _) in zip(axes, panels):
            lines = [("train_loss", "-"), ("val_loss", "--")] if key == "loss" else [(key, "-"), (REFERENCE.get(key), ":")]
            for col, ls in lines:
                if s.get(col):
                    x, y = zip(*s[col])
                    ax.plot(x, y, ls, color=color, marker="o" if len(x) <= 15 else None, linewidth=1.4,
                            markersize=3 if len(x) > 1 else 6, mfc=color if ls == "-" else "white")
        handles.append(Line2D([], [], color=color, linewidth=2, label=run.label))
    epochs = max(e for _, s in data for v in s.values() for e, _ in v)
    for ax, (key, ylabel, ylim) in zip(axes, panels):
        _style_axis(ax, "epoch", ylabel, epochs)
        if ylim:
            ax.set_ylim(ylim[0] - 0.02, ylim[1] + 0.02)
        ax.set_title(ylabel if key != "loss" else f"{ylabel} (solid: train, dashed: val)", fontsize=10)
        styles = [("-", "train"), ("--", "val")] if key == "loss" else \
            [("-", "model"), (":", "degraded input")] if any(s.get(REFERENCE.get(key)) for _, s in data) else []
        if styles:  # what the line styles mean (colours are runs)
            ax.legend(handles=[Line2D([], [], color="0.3", ls=ls, marker="o", markersize=4, label=lb,
                                      mfc="0.3" if ls == "-" else "white") for ls, lb in styles], fontsize=8, loc="best")
    fig.suptitle(title, fontsize=11)
    if len(data) <= LEGEND_INSIDE_MAX and axes[-1].get_legend() is None:
        axes[-1].legend(handles=handles, fontsize=8, loc="best")
    else:
        fig.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                   title="run", title_fontsize=8)
    fig.tight_layout()
    return figure_png(fig, dpi=100)


def curve_figures(runs: list[Run]) -> list[dict]:
    """``[{"title", "alt", "src", "labels"}]``: one figure per task and sweep folder (the folder holding the
    runs), pretraining first."""
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for r in runs:
        groups[(r.task, r.group)].append(r)
    order = sorted(groups, key=lambda k: (TASK_ORDER.index(k[0]) if k[0] in TASK_ORDER else len(TASK_ORDER), k))
    out = []
    for task, group in order:
        members = sorted(groups[(task, group)], key=lambda r: (r.name, str(r.seed), r.rel))
        kind = "pretraining" if task == "pretrain" else f"{TASK_TITLES.get(task, task)} training".lower()
        title = f"{TASK_TITLES.get(task, task)} curves" + (f": {group}" if group else "")
        src = curves_figure(members, task, title)
        if src:
            out.append({"title": title, "alt": f"{kind} curves" + (f" of {group}" if group else ""), "src": src,
                        "labels": [r.label for r in members]})
    return out
