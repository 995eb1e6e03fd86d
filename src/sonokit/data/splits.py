"""Versioned, de-duplicated, group-aware train/val/test splits with nested label-fraction subsets.

A split file (JSON, ``"format": "sonokit-split"``, ``"version": 2``) holds one fixed held-out ``test`` set,
one ``val`` set and ``train``; then, per seed, nested subsets of train (e.g. 20% ⊂ 50% ⊂ 100%), stratified
by class. Samples that are exact or near duplicates of each other, or that share a patient / fetus group,
form one *unit* that is never divided between train, val and test.

Algorithm (deterministic given ``split_seed``): build units (union of duplicate groups and reader groups);
give each unit the majority class of its samples; per class, shuffle units and fill test, then val, up to
their target image counts; everything else is train. Subsets: per seed, shuffle the train units per class
and take the first ``ceil(f * n)`` images of each class in that order, so smaller fractions are prefixes
of larger ones.

Pinning (version 2): ``files`` maps every id to a digest of its image and mask files
(:mod:`sonokit.data.pin`), and ``hash`` is the SHA-256 of the assignment and the digests
(:func:`content_hash`). A checkpoint records the hash of the split it was trained with, so ``evaluate``
can tell when the split file or the images changed since training. :func:`load_split` refuses a file whose
content no longer matches its ``hash`` (edited by hand); version 1 files (no pins) still load.
"""
from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from ..errors import DataError
from .check import CheckReport
from .io import atomic_write
from .union_find import UnionFind

SPLIT_FORMAT = "sonokit-split"
SPLIT_VERSION = 2
READABLE_VERSIONS = (1, 2)
HASHED_KEYS = ("train", "val", "test", "subsets", "files")


def _units(ids: list[str], groups: dict[str, str | None], dup_groups: list[list[str]]) -> list[list[str]]:
    uf = UnionFind(ids)
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


def content_hash(split: dict) -> str:
    """SHA-256 (hex) of the split's assignment (train / val / test / subsets) and its file digests."""
    import hashlib

    body = {k: split.get(k) for k in HASHED_KEYS if split.get(k) is not None}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def save_split(split: dict, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``split`` (version 2, with its content ``hash``) atomically; an existing file is replaced only
    with ``overwrite`` (the CLI's ``--force``), since a rewritten split silently changes what every trained
    model calls its test set."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise DataError(f"split file '{path}' already exists; models trained with it record its hash, and "
                        "replacing it changes their test set. Choose another --out, or pass --force to replace it")
    split = {**split, "format": SPLIT_FORMAT, "version": SPLIT_VERSION}
    split["hash"] = content_hash(split)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(split, indent=1) + "\n"))


def load_split(path: str | Path) -> dict:
    """Read and check a split file; the returned dict always has ``hash`` (computed for version 1 files)
    and ``pinned`` (True when it holds file digests)."""
    path = Path(path)
    try:
        split = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"split file '{path}' does not exist; create one with `sonokit data split`") from None
    except IsADirectoryError:
        raise DataError(f"split file '{path}' is a folder; expected a JSON file from `sonokit data split`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"split file '{path}' is not valid JSON: {e}") from None
    if not isinstance(split, dict) or split.get("format") != SPLIT_FORMAT or split.get("version") not in READABLE_VERSIONS:
        found = (split.get("format"), split.get("version")) if isinstance(split, dict) else type(split).__name__
        raise DataError(f"'{path}' is not a sonokit split file (version {', '.join(map(str, READABLE_VERSIONS))}); "
                        f"found {found!r}")
    for part in ("train", "val", "test"):
        if not isinstance(split.get(part), list):
            raise DataError(f"split file '{path}' has no '{part}' list")
    if split.get("hash") is not None and content_hash(split) != split["hash"]:
        raise DataError(f"split file '{path}' was changed after it was written: its content no longer matches "
                        "its recorded hash. Models trained with it would be scored on other images; restore the "
                        "file, or write a new split with `sonokit data split`")
    split["hash"] = split.get("hash") or content_hash(split)
    split["pinned"] = bool(split.get("files"))
    return split


def split_ids(split_path: str | Path, part: str, reader, classes: list[str] | None = None, *,
              label_key: str = "label") -> list[str]:
    """Ids of ``part`` of the split file at ``split_path`` (checked against ``reader``), filtered by class."""
    split = load_split(split_path)
    verify_split(split, reader.ids, str(split_path))
    return filter_classes(select_ids(split, part), reader, classes, label_key=label_key)


def filter_classes(ids: list[str], reader, classes: list[str] | None, *, label_key: str = "label",
                   where: str = "data.classes") -> list[str]:
    """``ids`` whose class (:meth:`Record.get_label`) is among ``classes`` (all when None). A class the
    dataset does not have is an error: it is a typo or the wrong dataset."""
    if not classes:
        return list(ids)
    labels = {r.id: r.get_label(label_key) for r in reader.records}
    known = {str(v) for v in labels.values() if v is not None}
    unknown = [c for c in classes if c not in known]
    if unknown:
        raise DataError(f"{where} names {unknown}, which the dataset '{reader.root}' does not have "
                        f"({label_key}); it has {sorted(known)}")
    return [i for i in ids if labels.get(i) in classes]


def select_ids(split: dict, part: str, *, seed: int | None = None, fraction: float = 1.0) -> list[str]:
    """Ids of ``part`` ('train' | 'val' | 'test'); for train with a fraction < 1, the seed's nested subset."""
    if part not in ("train", "val", "test"):
        raise DataError(f"unknown split part '{part}'; expected train, val or test")
    if not 0 < fraction <= 1:
        raise DataError(f"label fraction must be in (0, 1], found {fraction}")
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
