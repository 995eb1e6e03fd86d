"""Sharded pretraining data: datasets -> deterministic, resumable WebDataset tar shards, and their manifest.

A shard folder::

    OUT/shard-000000.tar, shard-000001.tar, ...   WebDataset tars of ``shard_size`` samples (the last: the rest)
    OUT/shards.json                               the manifest (see :func:`write_shards`)

Each sample is two tar members sharing its key (:func:`sample_key`): ``KEY.png``, the image (8-bit gray, or
16-bit when the source image is 16-bit; downscaled so that its long side is at most ``max_side`` pixels), and
``KEY.json``: ``source``, ``id`` (the reader's sample id), ``organ`` (anatomy name or null), ``organ_index``
(in the manifest's ``vocabulary``; -1 unknown), ``label`` (class name or null), ``spacing`` ([row, col] mm per
pixel of the stored image, or null), ``size`` and ``orig_size`` ([H, W] stored and original), ``bit_depth``.

Same inputs and settings give byte-identical shards: sources in the given order, samples in reader order,
members sorted within a sample, tar headers with mtime 0, uid/gid 0, user/group ``sonokit``, mode 0444.
The streaming reader is :class:`sonokit.data.shard_stream.ShardDataset`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from ..errors import ConfigError, DataError
from .datasets import DatasetReader
from .io import atomic_write, publish, sha256_file
from .organs import organ_index, organ_vocabulary

MANIFEST = "shards.json"
FORMAT = "sonokit-shards/1"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,24}$")


def sample_key(source: str, sample_id: str) -> str:
    """The WebDataset key of a sample: ``SOURCE__ID``, each run of characters other than letters, digits, ``_``
    and ``-`` in the id replaced by ``_`` (WebDataset cuts a key from its extension at the first dot; ``/``
    would make tar folders) and the id cut to 56 characters; when that changed the id, ``-`` and 8 hex digits
    of its SHA-1 follow, so distinct ids keep distinct keys (``busi__benign_benign_1-04d6b493``)."""
    safe = _UNSAFE.sub("_", sample_id).strip("_")[:56]
    key = f"{source}__{safe}"
    return key if safe == sample_id else f"{key}-{hashlib.sha1(sample_id.encode()).hexdigest()[:8]}"


def source_name(root: str | Path) -> str:
    """The default name of a source: its folder's name, made key-safe and cut to 24 characters."""
    return _UNSAFE.sub("_", Path(root).resolve().name).strip("_")[:24] or "source"


def _named(sources: Mapping[str, DatasetReader] | Sequence[DatasetReader]) -> list[tuple[str, DatasetReader]]:
    pairs = list(sources.items()) if isinstance(sources, Mapping) else [(source_name(r.root), r) for r in sources]
    if not pairs:
        raise ConfigError("write_shards needs at least one source dataset; found none")
    for name, reader in pairs:
        if not _NAME.match(name):
            raise ConfigError(f"source name '{name}' is not usable in sample keys; expected 1-24 letters, digits, "
                              "'_' or '-'")
        if not isinstance(reader, DatasetReader):
            raise ConfigError(f"source '{name}' is a {type(reader).__name__}; expected a reader from "
                              "sonokit.data.open_dataset")
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"two sources are named {dup}; give each its own name (NAME=FOLDER on the command line)")
    return pairs


def read_manifest(path: str | Path) -> dict:
    """The manifest of a shard folder (the folder or its ``shards.json``), checked; :class:`DataError` if absent,
    unreadable or not sonokit's."""
    path = Path(path)
    file = path / MANIFEST if path.is_dir() else path
    if not file.is_file():
        raise DataError(f"no shard manifest at '{file}'; expected a folder written by `sonokit data shard` "
                        f"(or write_shards) holding {MANIFEST}")
    try:
        man = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read shard manifest '{file}': {e}") from None
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        raise DataError(f"'{file}' is not a sonokit shard manifest (expected format '{FORMAT}')")
    man["dir"] = str(file.parent)
    return man


def _encode(sample, max_side: int | None) -> tuple[bytes, tuple[int, int], float, float, int]:
    """(1, H, W) float image -> (PNG bytes, stored (h, w), row scale, col scale, bit depth)."""
    img = sample.image[0]  # (H, W) in [0, 1]
    H, W = img.shape
    h, w = H, W
    if max_side and max(H, W) > max_side:
        s = max_side / max(H, W)
        h, w = max(1, round(H * s)), max(1, round(W * s))
        img = np.asarray(Image.fromarray(np.ascontiguousarray(img, np.float32)).resize((w, h), Image.BILINEAR))
    depth = 16 if sample.meta.get("bit_depth") == 16 else 8
    top = 65535 if depth == 16 else 255
    arr = np.clip(np.rint(np.asarray(img, np.float64) * top), 0, top).astype(np.uint16 if depth == 16 else np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue(), (h, w), H / h, W / w, depth


def _settings(named, shard_size, max_side, vocab) -> dict:
    from .. import __version__

    return {"shard_size": shard_size, "max_side": max_side, "vocabulary": list(vocab), "sonokit": __version__,
            "sources": [{"name": n, "format": r.name, "samples": len(r.records),
                         "ids_sha256": hashlib.sha256("\n".join(r.ids).encode()).hexdigest()} for n, r in named]}


def _start(out: Path, settings: dict, named, resume: bool) -> dict:
    """The manifest to continue from: a fresh one for an empty folder, the folder's own one when its settings
    match (and ``resume``); a :class:`ConfigError` otherwise."""
    file = out / MANIFEST
    if file.exists():
        man = read_manifest(file)
        if man["settings"] != settings:
            diff = sorted(k for k in settings if man["settings"].get(k) != settings[k])
            raise ConfigError(f"'{out}' holds shards written with other {', '.join(diff)} ({MANIFEST}); write to an "
                              "empty folder, or rerun with the same sources and settings to resume")
        if not resume:
            raise ConfigError(f"'{out}' already holds shards; pass resume=True to continue them, or use an empty folder")
        man.pop("dir")
        return man
    if out.exists() and not out.is_dir():
        raise ConfigError(f"'{out}' is a file; expected a folder for the shards")
    if out.exists() and any(not p.name.startswith(".") for p in out.iterdir()):
        raise ConfigError(f"'{out}' is not empty and holds no {MANIFEST}; write shards to an empty or new folder")
    return {"format": FORMAT, "settings": settings, "vocabulary": settings["vocabulary"],
            "sources": [{"name": n, "format": r.name, "root": str(r.root), "samples": len(r.records)} for n, r in named],
            "complete": False, "n_samples": 0, "shards": [], "skipped": []}


def _valid_prefix(out: Path, shards: list[dict]) -> list[dict]:
    """The shards of a manifest up to the first one missing on disk or of the wrong size (later ones are
    rewritten: a shard is a pure function of its sample range, so rewriting gives the same bytes)."""
    keep = []
    for s in shards:
        p = out / s["name"]
        if not p.is_file() or p.stat().st_size != s["bytes"]:
            break
        keep.append(s)
    return keep


def write_shards(sources: Mapping[str, DatasetReader] | Sequence[DatasetReader], out_dir: str | Path, *,
                 shard_size: int = 1000, organs: list[str] | tuple[str, ...] | None = None,
                 max_side: int | None = None, resume: bool = True,
                 log: Callable[[str], None] | None = print) -> dict:
    """Write the samples of ``sources`` as WebDataset tar shards in ``out_dir``; returns the manifest.

    Args:
        sources: readers from :func:`sonokit.data.open_dataset`, as ``{name: reader}`` (names: 1-24 letters,
            digits, ``_``, ``-``; they start every key) or a list (named after their folders).
        shard_size: samples per shard (the last shard holds the rest).
        organs: the organ vocabulary for ``organ_index`` (None: sonokit's default); every named anatomy of every
            source must be in it (:class:`ConfigError` otherwise, before anything is written).
        max_side: downscale (bilinear, antialiased) images whose long side exceeds this many pixels.
        resume: continue an interrupted write in ``out_dir`` (same sources and settings), skipping its complete
            shards; False: refuse a folder that holds shards.
        log: called with one line per shard written (None: silent).

    The manifest ``shards.json`` holds ``settings`` (shard size, max side, vocabulary, sonokit version, and per
    source its name, format, sample count and a digest of its ids: a rerun must match them), ``sources``,
    ``vocabulary``, ``shards`` (``name``, ``samples``, ``bytes``, ``sha256``, the ``start``/``stop`` range of
    positions in the ordered sample list it covers, ``skipped``), ``skipped`` (every unreadable sample:
    ``source``, ``id``, ``error``), ``n_samples`` and ``complete``. It is rewritten atomically after every shard;
    each shard is written under a temporary name and renamed when complete, so an interrupted run leaves
    complete shards only, and a rerun continues after the last one. Unreadable samples are skipped and listed,
    never fatal; :class:`DataError` when no sample at all can be read.
    """
    import webdataset as wds

    if not isinstance(shard_size, int) or shard_size < 1:
        raise ConfigError(f"shard_size must be a positive integer, found {shard_size!r}")
    if max_side is not None and max_side < 8:
        raise ConfigError(f"max_side must be at least 8 pixels (or None), found {max_side}")
    vocab = organ_vocabulary(organs)
    named = _named(sources)
    plan = []  # (source name, reader, record, key), in the fixed write order
    for name, reader in named:
        for rec in reader.records:
            organ = rec.anatomy or reader.anatomy
            if organ is not None and organ not in vocab:
                raise ConfigError(f"source '{name}' ({reader.root}) has anatomy '{organ}', which is not in the organ "
                                  f"vocabulary {list(vocab)}; add it (--organs)")
            plan.append((name, reader, rec, sample_key(name, rec.id)))
    keys = [p[3] for p in plan]
    if len(set(keys)) != len(keys):
        dup = sorted(k for k, c in Counter(keys).items() if c > 1)[:3]
        raise ConfigError(f"sample keys {dup} repeat; rename a source or its samples")
    out = Path(out_dir)
    man = _start(out, _settings(named, shard_size, max_side, vocab), named, resume)
    out.mkdir(parents=True, exist_ok=True)
    valid = _valid_prefix(out, man["shards"])
    if man["complete"] and len(valid) == len(man["shards"]):
        return _finish(out, man, log, resumed=True)
    man["shards"], man["complete"] = valid, False
    for p in out.glob(".shard-*.tar.tmp"):  # a shard an earlier run did not finish
        p.unlink()
    pos = valid[-1]["stop"] if valid else 0
    if log and pos:
        log(f"resuming after {len(man['shards'])} complete shards ({pos} of {len(plan)} samples done)")
    tail: list[dict] = []
    while pos < len(plan):
        index = len(man["shards"])
        name = f"shard-{index:06d}.tar"
        tmp = out / f".{name}.tmp"
        start, n, skipped = pos, 0, []
        with open(tmp, "wb") as f:
            tw = wds.TarWriter(f, user="sonokit", group="sonokit", mode=0o444, mtime=0, encoder=False)
            while pos < len(plan) and n < shard_size:
                src, reader, rec, key = plan[pos]
                pos += 1
                try:  # the image only: pretraining needs no mask, and a missing mask must not lose the image
                    s = reader.load(dataclasses.replace(rec, labeled=False, masks=()))
                    png, size, sy, sx, depth = _encode(s, max_side)
                except (DataError, ValueError, OSError) as e:
                    skipped.append({"source": src, "id": rec.id, "error": str(e)})
                    continue
                organ = rec.anatomy or reader.anatomy
                sp = s.spacing
                meta = {"source": src, "id": rec.id, "organ": organ, "organ_index": organ_index(organ, vocab),
                        "label": rec.label, "spacing": None if sp is None else [sp[0] * sy, sp[1] * sx],
                        "size": list(size), "orig_size": list(s.size), "bit_depth": depth}
                tw.write({"__key__": key, "png": png, "json": json.dumps(meta, sort_keys=True).encode()})
                n += 1
            tw.close()
            f.flush()
            os.fsync(f.fileno())
        if n == 0:  # only unreadable samples were left: no shard
            tmp.unlink()
            tail = skipped
            break
        publish(tmp, out / name)
        man["shards"].append({"name": name, "samples": n, "bytes": (out / name).stat().st_size,
                              "sha256": sha256_file(out / name), "start": start, "stop": pos, "skipped": skipped})
        _save(out, man)
        if log:
            log(f"{name}: {n} samples" + (f" ({len(skipped)} unreadable, skipped)" if skipped else ""))
    man["tail_skipped"] = tail
    return _finish(out, man, log, resumed=False)


def _finish(out: Path, man: dict, log, *, resumed: bool) -> dict:
    man["skipped"] = [s for sh in man["shards"] for s in sh["skipped"]] + man.get("tail_skipped", [])
    man["n_samples"] = sum(s["samples"] for s in man["shards"])
    if man["n_samples"] == 0:
        first = man["skipped"][0] if man["skipped"] else {"error": "no samples"}
        raise DataError(f"none of the {len(man['skipped'])} samples could be read (first problem: {first['error']})")
    man["complete"] = True
    _save(out, man)
    if log:
        log(f"{'already complete: ' if resumed else ''}{len(man['shards'])} shards, {man['n_samples']} samples, "
            f"{len(man['skipped'])} skipped, in {out}")
    return man


def _save(out: Path, man: dict) -> None:
    text = json.dumps({k: v for k, v in man.items() if k != "dir"}, indent=1)
    atomic_write(out / MANIFEST, lambda tmp: Path(tmp).write_text(text))


__all__ = ["write_shards", "read_manifest", "sample_key", "source_name", "MANIFEST"]
