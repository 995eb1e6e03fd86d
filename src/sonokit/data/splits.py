"""Versioned, de-duplicated, group-aware train/val/test splits with nested label-fraction subsets.

A split file (JSON, ``"format": "sonokit-split"``, ``"version": 1``) holds one fixed held-out ``test`` set,
one ``val`` set and ``train``; then, per seed, nested subsets of train (e.g. 20% ⊂ 50% ⊂ 100%), stratified
by class. Samples that are exact or near duplicates of each other, or that share a patient / fetus group,
form one *unit* that is never divided between train, val and test.

Algorithm (deterministic given ``split_seed``): build units (union of duplicate groups and reader groups);
give each unit the majority class of its samples; per class, shuffle units and fill test, then val, up to
their target image counts; everything else is train. Subsets: per seed, shuffle the train units per class
and take the first ``ceil(f * n)`` images of each class in that order, so smaller fractions are prefixes
of larger ones.
"""
from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from ..errors import DataError
from .check import CheckReport, _UnionFind
from .io import atomic_write

SPLIT_FORMAT = "sonokit-split"
SPLIT_VERSION = 1


def _units(ids: list[str], groups: dict[str, str | None], dup_groups: list[list[str]]) -> list[list[str]]:
    uf = _UnionFind(ids)
    by_group: dict[str, list[str]] = defaultdict(list)
    for i in ids:
        if groups.get(i):
            by_group[groups[i]].append(i)
    for members in list(by_group.values()) + dup_groups:
        members = [m for m in members if m in uf.parent]
        for m in members[1:]:
            uf.union(members[0], m)
    out: dict[str, list[str]] = defaultdict(list)
    for i in ids:
        out[uf.find(i)].append(i)
    return sorted(out.values(), key=lambda u: u[0])


def make_split(
    ids: list[str],
    *,
    labels: dict[str, str | None],
    groups: dict[str, str | None] | None = None,
    duplicate_groups: list[list[str]] | None = None,
    val: float = 0.1,
    test: float = 0.2,
    seeds: tuple[int, ...] = (0, 1, 2),
    fractions: tuple[float, ...] = (0.2, 0.5, 1.0),
    split_seed: int = 0,
    dataset: str = "",
    meta: dict | None = None,
) -> dict:
    """Build a split dictionary (see module docstring). Fractions are of the train set, in (0, 1]."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"val and test fractions must be in [0, 1) with val + test < 1; found val={val}, test={test}")
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"label fractions must be in (0, 1]; found {f}")
    if not ids:
        raise DataError("cannot split an empty dataset")
    groups = groups or {}
    units = _units(list(ids), groups, duplicate_groups or [])
    rng = np.random.default_rng(split_seed)
    unit_class = [Counter(str(labels.get(i)) for i in u).most_common(1)[0][0] for u in units]
    by_class: dict[str, list[int]] = defaultdict(list)
    for k, c in enumerate(unit_class):
        by_class[c].append(k)
    assign = {"train": [], "val": [], "test": []}
    for c in sorted(by_class):
        ks = by_class[c]
        ks = [ks[j] for j in rng.permutation(len(ks))]
        n_c = sum(len(units[k]) for k in ks)
        targets = {"test": round(test * n_c), "val": round(val * n_c)}
        filled = {"test": 0, "val": 0}
        for k in ks:
            dest = "train"
            for part in ("test", "val"):
                if filled[part] < targets[part] and filled[part] + len(units[k]) <= targets[part] + max(1, len(units[k]) // 2):
                    dest = part
                    break
            if dest != "train":
                filled[dest] += len(units[k])
            assign[dest].append(k)
    parts = {p: sorted(i for k in ks for i in units[k]) for p, ks in assign.items()}
    subsets: dict[str, dict[str, list[str]]] = {}
    for seed in seeds:
        srng = np.random.default_rng(10_000 + seed)
        order: dict[str, list[str]] = defaultdict(list)
        train_units = sorted(assign["train"])
        for k in [train_units[j] for j in srng.permutation(len(train_units))]:
            order[unit_class[k]].extend(units[k])
        subsets[str(seed)] = {}
        for f in sorted(fractions):
            chosen = []
            for c in sorted(order):
                chosen.extend(order[c][: math.ceil(f * len(order[c]))])
            subsets[str(seed)][f"{f:g}"] = sorted(chosen)
    return {
        "format": SPLIT_FORMAT,
        "version": SPLIT_VERSION,
        "dataset": dataset,
        "n": len(ids),
        "params": {"val": val, "test": test, "split_seed": split_seed, "seeds": list(seeds),
                   "fractions": [float(f) for f in fractions], **(meta or {})},
        "counts": {p: dict(Counter(str(labels.get(i)) for i in v)) for p, v in parts.items()},
        "duplicate_groups": duplicate_groups or [],
        "train": parts["train"],
        "val": parts["val"],
        "test": parts["test"],
        "subsets": subsets,
    }


def split_from_report(report: CheckReport, reader, **kw) -> dict:
    """Split a checked dataset: duplicate groups from the check, patient/fetus groups from the reader."""
    readable = set(report.hashes)
    ids = [r.id for r in reader.records if r.id in readable]
    groups = {r.id: r.group for r in reader.records}
    labels = {r.id: r.label for r in reader.records}
    dups = report.duplicate_groups()
    meta = {"near_duplicate_bits": kw.pop("near_threshold", None), "excluded_unreadable": sorted(
        r.id for r in reader.records if r.id not in readable)}
    return make_split(ids, labels=labels, groups=groups, duplicate_groups=dups, dataset=reader.name, meta=meta, **kw)


def save_split(split: dict, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(split, indent=1) + "\n"))


def load_split(path: str | Path) -> dict:
    path = Path(path)
    try:
        split = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"split file '{path}' does not exist; create one with `sonokit data split`") from None
    except json.JSONDecodeError as e:
        raise DataError(f"split file '{path}' is not valid JSON: {e}") from None
    if split.get("format") != SPLIT_FORMAT or split.get("version") != SPLIT_VERSION:
        raise DataError(f"'{path}' is not a sonokit split file version {SPLIT_VERSION} "
                        f"(found format={split.get('format')!r}, version={split.get('version')!r})")
    return split


def select_ids(split: dict, part: str, *, seed: int | None = None, fraction: float = 1.0) -> list[str]:
    """Ids of ``part`` ('train' | 'val' | 'test'); for train with a fraction < 1, the seed's nested subset."""
    if part not in ("train", "val", "test"):
        raise DataError(f"unknown split part '{part}'; expected train, val or test")
    if part != "train" or fraction >= 1.0:
        return list(split[part])
    seeds = split["subsets"]
    key_seed = str(seed if seed is not None else 0)
    if key_seed not in seeds:
        raise DataError(f"split has label-fraction subsets for seeds {sorted(seeds)}; seed {seed} requested")
    key = f"{fraction:g}"
    if key not in seeds[key_seed]:
        raise DataError(f"split has fractions {sorted(seeds[key_seed])}; fraction {fraction} requested")
    return list(seeds[key_seed][key])


def verify_split(split: dict, ids: list[str], path: str = "split") -> None:
    """Raise when the split names samples that the dataset does not have."""
    have = set(ids)
    missing = [i for p in ("train", "val", "test") for i in split[p] if i not in have]
    if missing:
        raise DataError(f"{path} names {len(missing)} samples not found in the dataset (e.g. {missing[:3]}); "
                        "is it the split of this dataset?")
