"""Dataset health check: counts, sizes, and every problem found, each naming its file.

Problems: unreadable file, broken symbolic link (a file whose target is gone, which the readers cannot see),
mask/image size mismatch, missing mask, non-binary mask, exact duplicates (identical pixels) and near duplicates
(perceptual hash within ``near_threshold`` bits).

The perceptual hash is the classic DCT pHash: the image is resized to 32x32, its 2-D DCT-II taken, the
8x8 lowest-frequency block (DC included) compared with its median -> 64 bits. Two images are near
duplicates when their hashes differ in at most ``near_threshold`` bits (default 6 of 64; pHash's
usual range is 4-10).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.fft import dctn

from ..errors import DataError
from .datasets import DatasetReader
from .union_find import UnionFind


def phash(image: np.ndarray) -> int:
    """64-bit DCT perceptual hash of a (H, W) or (1, H, W) image in [0, 1]."""
    import torch
    import torch.nn.functional as F

    img = np.asarray(image, dtype=np.float32).reshape(image.shape[-2:])
    small = F.interpolate(torch.from_numpy(img)[None, None], size=(32, 32), mode="area")[0, 0].numpy()
    low = dctn(small.astype(np.float64), type=2, norm="ortho")[:8, :8].ravel()
    bits = low > np.median(low)
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def broken_links(root: str | Path) -> list[tuple[str, str]]:
    """``(path, message)`` for every symbolic link under ``root`` whose target does not exist (links to
    folders are not followed)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [(str(p), f"broken symbolic link (target '{os.readlink(p)}' does not exist)")
            for p in sorted(root.rglob("*")) if p.is_symlink() and not p.exists()]


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


@dataclass
class CheckReport:
    root: str
    format: str
    n_images: int = 0
    n_readable: int = 0
    classes: Counter = field(default_factory=Counter)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (file, message)
    broken_links: int = 0
    exact_duplicates: list[list[str]] = field(default_factory=list)  # groups of ids
    near_duplicates: list[list[str]] = field(default_factory=list)
    colour_images: list[str] = field(default_factory=list)
    converted: list[tuple[str, str]] = field(default_factory=list)
    hashes: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str | None] = field(default_factory=dict)

    @property
    def unreadable(self) -> int:
        return self.n_images - self.n_readable

    @property
    def ok(self) -> bool:
        """All images readable and no broken links (duplicates and other findings do not make a dataset
        unusable)."""
        return self.unreadable == 0 and self.broken_links == 0

    def duplicate_groups(self) -> list[list[str]]:
        """Exact and near duplicates merged into connected groups of ids (used by splits)."""
        uf = UnionFind(self.hashes.keys())
        for g in self.exact_duplicates + self.near_duplicates:
            for a in g[1:]:
                uf.union(g[0], a)
        return uf.groups()

    def summary(self) -> dict:
        hs = np.array(self.sizes) if self.sizes else np.zeros((0, 2))
        n_near = len({i for g in self.near_duplicates for i in g})
        return {
            "root": self.root,
            "format": self.format,
            "images": self.n_images,
            "readable": self.n_readable,
            "broken_links": self.broken_links,
            "classes": dict(self.classes),
            "height_min_median_max": [int(hs[:, 0].min()), int(np.median(hs[:, 0])), int(hs[:, 0].max())] if len(hs) else [],
            "width_min_median_max": [int(hs[:, 1].min()), int(np.median(hs[:, 1])), int(hs[:, 1].max())] if len(hs) else [],
            "colour_images": len(self.colour_images),
            "exact_duplicate_groups": self.exact_duplicates,
            "near_duplicate_groups": len(self.near_duplicates),
            "images_in_near_duplicate_groups": n_near,
            "problems": [{"file": f, "problem": m} for f, m in self.problems],
        }


def check_dataset(
    reader: DatasetReader,
    *,
    near_threshold: int = 6,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Read every sample of ``reader`` and report counts, sizes and problems (see module docstring)."""
    if near_threshold < 0 or near_threshold > 64:
        raise ValueError(f"near_threshold must be in 0..64 bits, found {near_threshold}")
    rep = CheckReport(root=str(reader.root), format=reader.name, n_images=len(reader))
    rep.problems.extend(reader.problems)
    links = broken_links(reader.root)
    rep.problems.extend(links)
    rep.broken_links = len(links)
    digests: dict[str, list[str]] = {}
    for i, rec in enumerate(reader.records):
        if progress:
            progress(i, len(reader))
        try:
            s = reader.load(rec)
        except DataError as e:
            msg = str(e)
            if rec.missing_mask and "mask" in msg:
                # already listed by the reader's index as "missing mask"; the image itself may still be readable
                try:
                    s = reader.load(dataclasses.replace(rec, labeled=False))
                except DataError as e2:
                    rep.problems.append((str(rec.image), str(e2)))
                    continue
            else:
                rep.problems.append((str(rec.image), msg))
                continue
        rep.n_readable += 1
        rep.classes[rec.label or "unlabeled"] += 1
        rep.labels[rec.id] = rec.label
        rep.sizes.append(s.size)
        if s.meta.get("colour"):
            rep.colour_images.append(str(rec.image))
        for k in ("bit_depth", "alpha_dropped"):
            if s.meta.get(k):
                rep.converted.append((str(rec.image), f"{k}={s.meta[k]}"))
        if s.meta.get("nonbinary_mask"):
            rep.problems.append((str(rec.masks[0]) if rec.masks else str(rec.image),
                                 "non-binary mask (more than two values); thresholded at half its maximum"))
        digest = hashlib.sha1(np.ascontiguousarray(s.image).tobytes() + str(s.size).encode()).hexdigest()
        digests.setdefault(digest, []).append(rec.id)
        rep.hashes[rec.id] = phash(s.image)
    if progress:
        progress(len(reader), len(reader))
    rep.exact_duplicates = sorted(sorted(g) for g in digests.values() if len(g) > 1)
    for g in rep.exact_duplicates:
        labels = {rep.labels.get(i) for i in g}
        note = f" filed under different classes {sorted(map(str, labels))}" if len(labels) > 1 else ""
        rep.problems.append((", ".join(g), f"exact duplicate images{note}"))
    # near duplicates: all pairs within the Hamming threshold, merged into connected groups
    ids = list(rep.hashes)
    if ids:
        h = np.array([rep.hashes[i] for i in ids], dtype=np.uint64)
        uf = UnionFind(ids)
        for start in range(0, len(ids), 1024):  # rows in chunks: memory O(1024 * N)
            dist = np.bitwise_count(h[start : start + 1024, None] ^ h[None, :])  # (chunk, N) Hamming distances
            ii, jj = np.nonzero(dist <= near_threshold)
            for a, b in zip(ii + start, jj):
                if a < b:
                    uf.union(ids[a], ids[b])
        exact = {tuple(g) for g in rep.exact_duplicates}
        rep.near_duplicates = sorted(g for g in uf.groups() if tuple(g) not in exact)
        for g in rep.near_duplicates:
            rep.problems.append((", ".join(g[:6]) + (" ..." if len(g) > 6 else ""),
                                 f"near-duplicate group of {len(g)} (pHash within {near_threshold} bits)"))
    return rep
