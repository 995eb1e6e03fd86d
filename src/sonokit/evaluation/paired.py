"""Paired per-image comparison of two models scored on the same images: the mean difference of a metric with
a seeded bootstrap confidence interval.

Two models evaluated on one test set give two values per image; their differences ``d_i = a_i - b_i`` are
paired (the same image is easy or hard for both), so the interval is that of the mean of ``d``, resampling
IMAGES with replacement (percentile bootstrap)::

    d* = mean of n differences drawn with replacement from d      (n_boot times, numpy Generator(seed))
    CI = [quantile(d*, (1 - level) / 2), quantile(d*, (1 + level) / 2)]

Images where either value is missing or NaN (e.g. HD95 of an empty prediction) are left out and counted.
Several runs of one model (seeds) are averaged per image first (:func:`mean_per_image`), so the resampling
unit stays the image. Numpy only: usable by experiments and benchmark scripts alike.
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

CHUNK = 1000  # bootstrap resamples drawn at a time (bounds the memory to CHUNK x n indices)


def per_image(result: Mapping | str | Path, metric: str = "dice") -> dict[str, float]:
    """``{image id: metric}`` of one evaluation: its result dict (``rows``), its ``<name>.json`` or its
    ``<name>_per_image.csv``."""
    if isinstance(result, (str, Path)):
        p = Path(result)
        if p.suffix == ".csv":
            with p.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
        else:
            rows = json.loads(p.read_text())["rows"]
    else:
        rows = result["rows"]
    return {str(r["id"]): float(r[metric]) for r in rows}


def mean_per_image(runs: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Per-image mean over several runs (e.g. seeds) of one model, on the images every run scored; NaN values
    are ignored (an image NaN in every run stays NaN)."""
    runs = list(runs)
    if not runs:
        return {}
    common = set(runs[0]).intersection(*runs[1:])
    out = {}
    for i in sorted(common):
        v = np.array([r[i] for r in runs], dtype=np.float64)
        out[i] = float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
    return out


def paired_bootstrap(a: Mapping[str, float], b: Mapping[str, float], *, n_boot: int = 10000, seed: int = 0,
                     level: float = 0.95) -> dict:
    """Mean of ``a[i] - b[i]`` over the images both have (finite values) and its bootstrap CI.

    Returns ``{n, mean_a, mean_b, diff, ci: [lo, hi], level, n_boot, seed, wins, losses, ties, left_out}``:
    ``wins`` counts the images where ``a`` is higher, ``left_out`` the images only one side has or where a
    value is NaN. Raises ValueError when no image is paired."""
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"n_boot must be >= 1 and level in (0, 1); found {n_boot}, {level}")
    ids = sorted(set(a) & set(b))
    pairs = [(a[i], b[i]) for i in ids if math.isfinite(a[i]) and math.isfinite(b[i])]
    left_out = len(set(a) | set(b)) - len(pairs)
    if not pairs:
        raise ValueError(f"no image has a finite value on both sides ({len(a)} and {len(b)} images, "
                         f"{len(ids)} in common)")
    x = np.array(pairs, dtype=np.float64)
    d = x[:, 0] - x[:, 1]
    n = d.size
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, CHUNK):
        k = min(CHUNK, n_boot - start)
        means[start:start + k] = d[rng.integers(0, n, size=(k, n))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return {"n": n, "mean_a": float(x[:, 0].mean()), "mean_b": float(x[:, 1].mean()), "diff": float(d.mean()),
            "ci": [float(lo), float(hi)], "level": level, "n_boot": n_boot, "seed": seed,
            "wins": int((d > 0).sum()), "losses": int((d < 0).sum()), "ties": int((d == 0).sum()),
            "left_out": left_out}


def format_paired(res: Mapping, *, scale: float = 100.0, unit: str = " pts", digits: int = 1) -> str:
    """``"+1.2 pts (95% CI -0.3 to +2.8; n = 130 images, a higher on 70, lower on 55)"``."""
    lo, hi = (scale * v for v in res["ci"])
    return (f"{scale * res['diff']:+.{digits}f}{unit} ({100 * res['level']:g}% CI {lo:+.{digits}f} to "
            f"{hi:+.{digits}f}; n = {res['n']} images, higher on {res['wins']}, lower on {res['losses']})")
