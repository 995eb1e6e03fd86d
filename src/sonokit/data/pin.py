"""Pinned data: file digests in split files, and the checks ``evaluate`` runs against a model's training data.

A split file (version 2) maps every id to a digest of its files (:func:`record_digest`: SHA-256 of the
image's bytes followed by each mask file's bytes, first 16 hex digits). A trained model's checkpoint records
the hash of its split and the ids it was trained and validated on. :func:`data_changes` compares what is
about to be scored with what the model was trained with and names every difference: a split file that
changed, test images that were training images of the model, image or mask files whose bytes changed.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from .splits import load_split


def file_digest(paths: list[Path] | tuple[Path, ...]) -> str:
    """SHA-256 of the concatenated bytes of ``paths`` (first 16 hex digits); a missing file counts as empty
    with its name, so a deleted mask changes the digest."""
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        h.update(p.name.encode() + b"\0")
        if p.is_file():
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        else:
            h.update(b"<missing>")
    return h.hexdigest()[:16]


def record_digest(rec) -> str:
    """Digest of a reader record's image file and mask files (DICOM frames share their file's digest)."""
    return file_digest([rec.image, *rec.masks])


def pin_split(split: dict, reader) -> dict:
    """``split`` with ``files``: the digest of every id in train, val and test (reads every file once)."""
    ids = [i for p in ("train", "val", "test") for i in split[p]]
    return {**split, "files": {i: record_digest(reader.record(i)) for i in sorted(set(ids))}}


def changed_files(split: dict, reader, ids: list[str]) -> list[tuple[str, str]]:
    """``(id, what)`` for every id in ``ids`` whose files differ from the split's pinned digests."""
    files = split.get("files") or {}
    out = []
    for i in ids:
        if i not in files:
            continue
        rec = reader.record(i)
        if record_digest(rec) != files[i]:
            out.append((i, f"'{rec.image}' (or its mask) changed since the split was written"))
    return out


def training_record(split: dict | None, split_path: str | None, train_ids: list[str], val_ids: list[str]) -> dict:
    """What a checkpoint records about its data: the split's path and hash, and the ids it trained and
    validated on (so a later evaluation can prove its test set is disjoint from them)."""
    return {"split": split_path, "split_hash": split.get("hash") if split else None,
            "split_pinned": bool(split and split.get("files")), "train_ids": sorted(train_ids),
            "val_ids": sorted(val_ids)}


def data_changes(trained: dict, *, split_path: str | None, part: str, ids: list[str], reader) -> list[str]:
    """Differences between the data a model was trained with (``trained``: the checkpoint's data record)
    and what is about to be scored (``ids`` of ``part`` of ``split_path``). Empty when nothing changed."""
    problems = []
    split = None
    if split_path:
        split = load_split(split_path)
        same_file = trained.get("split") and Path(trained["split"]).resolve() == Path(split_path).resolve()
        if same_file and trained.get("split_hash") and split["hash"] != trained["split_hash"]:
            problems.append(f"the split file '{split_path}' changed since this model was trained (its hash was "
                            f"{trained['split_hash'][:12]}, is {split['hash'][:12]})")
    seen = set(trained.get("train_ids") or ()) | (set(trained.get("val_ids") or ()) if part == "test" else set())
    if part in ("test", "val") and seen:
        leaked = sorted(set(ids) & seen)
        if leaked:
            what = "training or validation" if part == "test" else "training"
            problems.append(f"{len(leaked)} of the {len(ids)} '{part}' images were {what} images of this model "
                            f"(e.g. {', '.join(leaked[:3])}); its score on them would not be a held-out result")
    if split is not None and split.get("files"):
        changed = changed_files(split, reader, ids)
        if changed:
            problems.append(f"{len(changed)} image(s) changed since the split was written: "
                            + "; ".join(w for _, w in changed[:3]) + (" ..." if len(changed) > 3 else ""))
    return problems
