"""Streaming a shard folder (:mod:`sonokit.data.shards`) as a torch IterableDataset, split by DDP rank and
DataLoader worker, with a deterministic shuffle.

**Who reads what.** An epoch orders the samples shard by shard (the shards in a permutation drawn from
``(seed, epoch)``, the same on every rank; manifest order without shuffling) and cuts that list of N samples
into R equal contiguous parts, one per rank, each cut again into W near-equal contiguous parts, one per
DataLoader worker. A part spans whole shards except at its two ends, so a worker reads at most two shards
partly. With N divisible by R every sample is seen exactly once per epoch. Otherwise (DDP needs the same
number of batches on every rank) each rank gets ceil(N / R) samples and the list wraps around: the first
``R * ceil(N / R) - N`` samples of the epoch's order are seen twice (as torch's ``DistributedSampler`` pads);
``drop_last=True`` gives floor(N / R) and leaves the last ``N mod R`` out instead. Both vary with the epoch.
Each worker then yields exactly its share, so each rank yields ``sum_w ceil(n_w / B)`` batches of size B:
the same on every rank (given the same ``num_workers``).

**Broken shards.** A shard cut mid-file or a sample that cannot be decoded is logged, appended to
:attr:`ShardDataset.errors` and skipped; the samples before it are used and the run goes on. Under DDP a
worker that lost samples repeats its last good sample that many times, so batch counts stay equal across
ranks (a worker left with no readable sample at all raises :class:`DataError`). The counters live in the
process that read (with DataLoader workers: the worker; the log reaches the console from there).
"""
from __future__ import annotations

import io
import json
import logging
import math
import os
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, DataError
from .organs import organ_index, organ_vocabulary
from .preprocess import letterbox
from .shards import read_manifest

log = logging.getLogger("sonokit.data")


def epoch_parts(counts: list[int], *, rank: int, world_size: int, worker: int = 0, num_workers: int = 1,
                order: list[int] | None = None, drop_last: bool = False) -> list[tuple[int, int, int]]:
    """The samples one (rank, worker) reads in an epoch, as ``(shard index, first, stop)`` ranges of
    sample positions within shards (see the module docstring), given the shards' sample ``counts`` and the
    epoch's shard ``order`` (None: as listed)."""
    order = list(range(len(counts))) if order is None else order
    N = sum(counts)
    per_rank = N // world_size if drop_last else -(-N // world_size)
    if N == 0 or per_rank == 0:
        raise DataError(f"{N} samples cannot be split over {world_size} ranks with drop_last={drop_last}; "
                        "expected at least one sample per rank")
    lo = rank * per_rank + per_rank * worker // num_workers
    hi = rank * per_rank + per_rank * (worker + 1) // num_workers
    starts = np.cumsum([0] + [counts[j] for j in order])  # epoch position where each shard of the order begins
    parts = []
    p = lo
    while p < hi:  # positions past N wrap around (padding)
        q = p % N
        j = int(np.searchsorted(starts, q, side="right")) - 1
        first = q - int(starts[j])
        take = min(hi - p, counts[order[j]] - first)  # >= 1: shard j holds position q
        parts.append((order[j], first, first + take))
        p += take
    return parts


def _dist_info() -> tuple[int, int] | None:
    """(rank, world size) of an initialised torch.distributed group, else of the RANK/WORLD_SIZE environment
    (torchrun), else None."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return None


class ShardDataset(torch.utils.data.IterableDataset):
    """The samples of a shard folder as dicts: ``image`` (1, S, S) float32 in [0, 1] (letterboxed to
    ``image_size``), ``organ`` (index in ``organs``; -1 unknown), ``label`` (index in ``classes``; -1 unknown or
    no ``classes``), ``spacing`` (2,) float32 mm per letterboxed pixel (NaN unknown) and ``key`` (str).

    Args:
        url_or_dir: a folder written by :func:`sonokit.data.shards.write_shards`, or its ``shards.json`` (the
            manifest's sample counts make the split exact; an unfinished write is refused).
        image_size: side S of the square output.
        shuffle_buffer: samples held by the shuffle buffer of each worker (0: no shuffling at all, shards and
            samples in manifest order). Shuffling also permutes the shard order per epoch.
        seed: with the epoch (:meth:`set_epoch`), fixes the shard order and every shuffle buffer.
        organs: the organ vocabulary for ``organ`` (None: the one the shards were written with).
        classes: class names for ``label``.
        split_by_rank: split the samples over torch.distributed ranks (:func:`_dist_info`; also read when the
            dataset is built, for DataLoader workers started by spawn); False: every rank reads everything.
        drop_last: with N samples not divisible by the world size, leave the remainder out instead of repeating
            samples (module docstring).
        rank, world_size: override the distributed rank and world size.

    Call :meth:`set_epoch` before each epoch, as with ``DistributedSampler`` (without it every epoch has the
    same order); with ``persistent_workers=True`` the workers never see the new epoch, so leave it off.
    """

    def __init__(self, url_or_dir: str | Path, *, image_size: int, shuffle_buffer: int = 1000, seed: int = 0,
                 organs: list[str] | tuple[str, ...] | None = None, classes: list[str] | None = None,
                 split_by_rank: bool = True, drop_last: bool = False, rank: int | None = None,
                 world_size: int | None = None) -> None:
        super().__init__()
        man = read_manifest(url_or_dir)
        if not man.get("complete"):
            raise DataError(f"shard folder '{man['dir']}' is incomplete (an interrupted write); rerun "
                            "`sonokit data shard` with the same arguments to finish it")
        if image_size < 8:
            raise ConfigError(f"image_size must be at least 8 pixels, found {image_size}")
        if shuffle_buffer < 0:
            raise ConfigError(f"shuffle_buffer must be >= 0, found {shuffle_buffer}")
        if (rank is None) != (world_size is None) or (world_size is not None and not 0 <= rank < world_size):
            raise ConfigError(f"rank and world_size go together, with 0 <= rank < world_size; found {rank}, {world_size}")
        self.dir = Path(man["dir"])
        self.paths = [str(self.dir / s["name"]) for s in man["shards"]]
        self.counts = [int(s["samples"]) for s in man["shards"]]
        self.image_size, self.shuffle_buffer, self.seed = int(image_size), int(shuffle_buffer), int(seed)
        self.organs = organ_vocabulary(organs) if organs else tuple(man["vocabulary"])
        self.classes = list(classes) if classes else None
        self.split_by_rank, self.drop_last = split_by_rank, drop_last
        self._fixed = None if rank is None else (int(rank), int(world_size))
        self._seen = _dist_info()  # for workers started by spawn, which see no process group
        self.epoch = 0
        self.errors: list[str] = []
        self.missing = 0
        self._rank_world()  # too few samples for the world size: fail here, not in a worker

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose shard order and shuffle the next iteration draws (with ``seed``)."""
        self.epoch = int(epoch)

    def _rank_world(self) -> tuple[int, int]:
        if self._fixed:
            r, w = self._fixed
        else:
            r, w = (_dist_info() or self._seen or (0, 1)) if self.split_by_rank else (0, 1)
        per_rank = sum(self.counts) // w if self.drop_last else math.ceil(sum(self.counts) / w)
        if per_rank == 0:
            raise DataError(f"'{self.dir}' holds {sum(self.counts)} samples, fewer than the {w} ranks")
        return r, w

    def __len__(self) -> int:
        """Samples this rank yields per epoch (all its DataLoader workers together)."""
        _, w = self._rank_world()
        N = sum(self.counts)
        return N // w if self.drop_last else math.ceil(N / w)

    def _problem(self, msg: str) -> None:
        log.warning("skipping broken shard data: %s", msg)
        self.errors.append(msg)

    def _read(self, parts):
        import webdataset as wds

        for shard, first, stop in parts:
            url = self.paths[shard]

            reported = []

            def handler(exn, url=url, reported=reported):
                if not reported:  # a cut tar raises once per member read and once more at the next header
                    why = str(exn.args[0]).split(" @ ")[0] if exn.args else repr(exn)
                    self._problem(f"{Path(url).name}: {why} (the shard is cut off or corrupt; its rest is skipped)")
                    reported.append(exn)
                return True  # go on with the next sample / shard

            for i, s in enumerate(wds.tarfile_samples([{"url": url}], handler=handler)):
                if i >= stop:
                    break
                if i >= first:
                    yield s

    def _decode(self, s: dict) -> dict | None:
        where = f"{Path(s.get('__url__', '?')).name}: sample '{s.get('__key__')}'"
        if "png" not in s or "json" not in s:
            self._problem(f"{where} is incomplete (members: {', '.join(k for k in s if not k.startswith('__'))})")
            return None
        try:
            meta = json.loads(s["json"])
            with Image.open(io.BytesIO(s["png"])) as im:
                arr = np.asarray(im)
            img = torch.from_numpy(arr.astype(np.float32) / (255.0 if arr.dtype == np.uint8 else 65535.0))
            if img.ndim != 2:
                raise ValueError(f"expected a gray image, found shape {tuple(arr.shape)}")
            x, box = letterbox(img[None], self.image_size)  # (1, S, S)
        except (KeyError, ValueError, OSError, SyntaxError, Image.DecompressionBombError) as e:
            self._problem(f"{where}: {type(e).__name__}: {e}")
            return None
        sp = meta.get("spacing")
        scale = box.orig_h / box.new_h  # stored pixels per letterboxed pixel
        label = meta.get("label")
        return {"image": x, "organ": organ_index(meta.get("organ"), self.organs),
                "label": self.classes.index(label) if self.classes and label in self.classes else -1,
                "spacing": torch.tensor([math.nan, math.nan] if sp is None else [sp[0] * scale, sp[1] * scale],
                                        dtype=torch.float32),
                "key": s["__key__"]}

    def __iter__(self):
        import webdataset as wds

        rank, world = self._rank_world()
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        order = list(range(len(self.counts)))
        if self.shuffle_buffer > 0:
            random.Random(f"{self.seed}:{self.epoch}").shuffle(order)
        parts = epoch_parts(self.counts, rank=rank, world_size=world, worker=worker, num_workers=workers,
                            order=order, drop_last=self.drop_last)
        quota = sum(b - a for _, a, b in parts)
        self.errors, self.missing = [], 0
        raw = self._read(parts)
        if self.shuffle_buffer > 1:  # raw bytes in the buffer; decoded after
            rng = random.Random(f"{self.seed}:{self.epoch}:{rank}:{worker}")
            raw = wds.filters.shuffle(self.shuffle_buffer, self.shuffle_buffer, rng=rng)(raw)
        n, last = 0, None
        for s in raw:
            item = self._decode(s)
            if item is not None:
                n, last = n + 1, item
                yield item
        self.missing = quota - n
        if self.missing:
            log.warning("rank %d worker %d: %d of its %d samples were unreadable", rank, worker, self.missing, quota)
            if world > 1:  # equal batch counts on every rank, or DDP hangs
                if last is None:
                    raise DataError(f"rank {rank} worker {worker}: none of its {quota} samples of '{self.dir}' could "
                                    f"be read ({self.errors[0] if self.errors else 'no data'})")
                yield from (last for _ in range(self.missing))


__all__ = ["ShardDataset", "epoch_parts"]
