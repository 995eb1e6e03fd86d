"""Enhancement training data: per-frame clean-like TARGETS (computed once, cached) and random crops of them.

Khan et al. 2026 (arXiv 2601.21856) train on synthetic degradations of real B-mode frames; since real frames
have no clean ground truth, each frame's target is its non-local low-rank (NLLR) denoised version
(:func:`sonokit.enhance.nllr.nllr_denoise`). For phantom or natural images the original frame is the target.

Division of labour (which part does what):

* :class:`EnhanceTargets` reads each frame once (optionally downscaled so its longer side is ``max_side``),
  computes its target (``nllr`` or ``original``) and keeps it in memory as float16 (spacing < 1/2000 on
  [0.5, 1], below 8-bit quantisation). With ``cache_dir`` the NLLR targets are also written as ``.npy``
  files (atomically) under a folder named by a hash of the target settings, so a resumed run, or another
  run pointing at the same ``cache_dir``, loads them instead of recomputing.
* :class:`TargetCropDataset` returns square CROPS of the targets (``crop`` pixels: patch plus the blur
  margin), without rotation or degradation. Rotation (quarter turns), PSF blur and noise are applied to the
  batch in the Lightning task (:class:`sonokit.tasks.EnhanceTask`, through
  :class:`sonokit.physics.PairSynthesizer`) with a generator seeded per global step, so a resumed run replays
  the same degradations. Crop positions and frame order depend only on ``(seed, epoch, index)`` (no
  shuffling sampler), so they replay too.
* :class:`CentreCropDataset`: one fixed centre crop per validation frame.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .datasets import DatasetReader
from .io import atomic_write

log = logging.getLogger("sonokit.data")

TARGET_KINDS = ("nllr", "original")


def _safe_name(sid: str) -> str:
    """A file name for sample id ``sid``: readable part plus a short hash (ids may contain '/', '#', spaces)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", sid)[-80:]
    return f"{stem}-{hashlib.sha1(sid.encode()).hexdigest()[:8]}"


def _save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    atomic_write(path, write)


def downscale(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """(H, W) float -> area-downscaled so that max(H, W) <= max_side (unchanged when already small)."""
    H, W = image.shape
    if max_side is None or max(H, W) <= max_side:
        return image
    s = max_side / max(H, W)
    h, w = max(1, round(H * s)), max(1, round(W * s))
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]  # (1, 1, H, W)
    return F.interpolate(x, size=(h, w), mode="area")[0, 0].numpy()


class EnhanceTargets:
    """Targets of ``ids`` of ``reader``: ``targets[i]`` float16 (H_i, W_i) in [0, 1].

    Args:
        reader, ids: frames to use (any reader; the image of each :class:`~sonokit.data.Sample`).
        target: ``nllr`` (NLLR-denoised frame) or ``original``.
        nllr: keyword arguments of :func:`sonokit.enhance.nllr.nllr_denoise` (``sigma=None``: estimated per
            frame).
        max_side: downscale frames (area averaging) so the longer side is at most this; ``None``: full size.
        min_side: frames whose shorter side (after downscaling) is below this are skipped (listed in
            :attr:`skipped`); the crops need it.
        cache_dir: folder for the ``.npy`` cache of NLLR targets (``None``: memory only). The files go to
            ``cache_dir/<kind>-<hash of settings>/``; :attr:`cache_path` is that folder.
        fail_fast: raise on the first unreadable frame instead of skipping it.
        device: where NLLR runs (``cuda`` is much faster on full-size frames; the result is the same up to
            float round-off and the order of ``index_add_`` accumulation).
        progress: called as ``progress(done, total)``.

    Attributes: ``ids`` (kept), ``skipped`` ((id, reason) pairs), ``computed`` / ``loaded`` (how many targets
    were computed now vs read from the disk cache), ``seconds`` (time spent computing).
    """

    def __init__(self, reader: DatasetReader, ids: list[str], *, target: str = "nllr", nllr: dict | None = None,
                 max_side: int | None = None, min_side: int = 1, cache_dir: str | Path | None = None,
                 fail_fast: bool = False, device: str = "cpu",
                 progress: Callable[[int, int], None] | None = None) -> None:
        if target not in TARGET_KINDS:
            raise ValueError(f"target must be one of {list(TARGET_KINDS)}, found {target!r}")
        if max_side is not None and max_side < 8:
            raise ValueError(f"max_side must be >= 8 pixels or None, found {max_side}")
        self.kind, self.nllr, self.max_side, self.device = target, dict(nllr or {}), max_side, torch.device(device)
        self.ids: list[str] = []
        self.targets: list[np.ndarray] = []
        self.skipped: list[tuple[str, str]] = []
        self.computed = self.loaded = 0
        self.seconds = 0.0
        settings = {"target": target, "max_side": max_side, **({"nllr": self.nllr} if target == "nllr" else {})}
        key = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
        self.cache_path = Path(cache_dir) / f"{target}-{key}" if cache_dir is not None and target == "nllr" else None
        if self.cache_path is not None:
            self.cache_path.mkdir(parents=True, exist_ok=True)
            (self.cache_path / "settings.json").write_text(json.dumps(settings, indent=1, default=str))
        for n, sid in enumerate(ids):
            if progress:
                progress(n, len(ids))
            try:
                t = self._target(reader, sid)
            except (DataError, ValueError) as e:
                if fail_fast:
                    raise
                log.warning("skipping frame '%s': %s", sid, e)
                self.skipped.append((sid, str(e)))
                continue
            if min(t.shape) < min_side:
                self.skipped.append((sid, f"frame is {t.shape[1]}x{t.shape[0]} px (after max_side), smaller than "
                                          f"the {min_side}-px crop it needs (patch size plus degradation margin)"))
                continue
            self.ids.append(sid)
            self.targets.append(t)
        if progress:
            progress(len(ids), len(ids))

    def _target(self, reader: DatasetReader, sid: str) -> np.ndarray:
        f = self.cache_path / f"{_safe_name(sid)}.npy" if self.cache_path is not None else None
        if f is not None and f.is_file():
            try:
                t = np.load(f)
                self.loaded += 1
                return t
            except (OSError, ValueError) as e:  # a corrupt cache file is recomputed, never trusted
                log.warning("target cache '%s' unreadable (%s); recomputing", f, e)
        image = downscale(reader.get(sid).image[0], self.max_side)  # (H, W) float32 [0, 1]
        if not np.isfinite(image).all():
            raise DataError(f"frame '{sid}' has NaN/Inf pixels; expected finite values")
        t0 = time.perf_counter()
        if self.kind == "nllr":
            from ..enhance.nllr import nllr_denoise

            y = nllr_denoise(torch.from_numpy(image).to(self.device), **self.nllr)
            t = np.clip(y.cpu().numpy(), 0.0, 1.0)
        else:
            t = image
        self.seconds += time.perf_counter() - t0
        t = t.astype(np.float16)
        self.computed += 1
        if f is not None:
            _save_npy(f, t)
        return t

    def __len__(self) -> int:
        return len(self.ids)


def _none_usable(part: str, targets: EnhanceTargets) -> str:
    """The message for a split part left without frames: why, with the first frame's reason."""
    if not targets.skipped:
        return f"no usable {part} frames: none were given (the {part} part of the split is empty)"
    sid, why = targets.skipped[0]
    return f"no usable {part} frames: all {len(targets.skipped)} were skipped; e.g. '{sid}': {why}"


class TargetCropDataset(torch.utils.data.Dataset):
    """``patches_per_epoch`` random square crops of the targets: ``{"target": (1, crop, crop) float32}``.

    Item ``i`` of epoch ``e`` comes from frame ``perm_e[i % n]`` (``perm_e`` a permutation of the frames
    drawn from ``(seed, e)``) at a position drawn from ``(seed, e, i)``: deterministic, so no shuffling
    sampler is needed and a resumed run sees the same crops. Call :meth:`set_epoch` at each epoch's start
    (the task does, in ``on_train_epoch_start``). Exact replay holds with ``num_workers=0``; with worker
    processes (which must not be persistent, so that they copy the epoch) Lightning starts the workers of
    the FIRST epoch after a resume before that hook, so that one epoch reuses epoch 0's crop positions.
    """

    def __init__(self, targets: EnhanceTargets, *, crop: int, patches_per_epoch: int, seed: int = 0) -> None:
        if len(targets) == 0:
            raise DataError(_none_usable("training", targets))
        if patches_per_epoch < 1:
            raise ValueError(f"patches_per_epoch must be >= 1, found {patches_per_epoch}")
        small = [sid for sid, t in zip(targets.ids, targets.targets) if min(t.shape) < crop]
        if small:
            raise DataError(f"{len(small)} frames (e.g. '{small[0]}') are smaller than the {crop}-px crop")
        self.targets, self.crop, self.n, self.seed = targets, int(crop), int(patches_per_epoch), int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        frames = self.targets.targets
        perm = np.random.default_rng([self.seed, self.epoch]).permutation(len(frames))
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        t = frames[perm[i % len(frames)]]
        H, W = t.shape
        y, x = int(rng.integers(0, H - self.crop + 1)), int(rng.integers(0, W - self.crop + 1))
        c = t[y:y + self.crop, x:x + self.crop].astype(np.float32)
        return {"target": torch.from_numpy(c)[None]}  # (1, crop, crop)


class CentreCropDataset(torch.utils.data.Dataset):
    """One centre crop per frame: ``{"target": (1, crop, crop) float32, "index": i}`` (validation)."""

    def __init__(self, targets: EnhanceTargets, *, crop: int) -> None:
        if len(targets) == 0:
            raise DataError(_none_usable("validation", targets))
        self.targets, self.crop = targets, int(crop)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict:
        t = self.targets.targets[i]
        H, W = t.shape
        y, x = (H - self.crop) // 2, (W - self.crop) // 2
        c = t[y:y + self.crop, x:x + self.crop].astype(np.float32)
        return {"target": torch.from_numpy(c)[None], "index": i}
