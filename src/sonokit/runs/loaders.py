"""Data loaders whose order is a function of (seed, epoch), so a resumed run replays it exactly.

:class:`EpochSampler` draws epoch ``e``'s order from a generator seeded once with ``seed`` after replaying
the draws of epochs ``0..e-1`` — the same order that ``DataLoader(shuffle=True,
generator=torch.Generator().manual_seed(seed))`` gives under Lightning (per epoch: one 64-bit draw for the
loader's worker base seed, then the permutation; Lightning stops a sized loader after its last batch, so
``RandomSampler`` never reaches the extra draw it makes when exhausted), so runs made before resuming
existed keep their data order. Under
``torch.distributed`` each rank takes every ``world_size``-th index of the permutation (padded to equal
length, as ``DistributedSampler`` does).

:class:`ResumableLoader` is a ``DataLoader`` with Lightning's ``state_dict`` / ``load_state_dict``
interface: the run's checkpoint callback tells it how many batches of the current epoch are done
(:attr:`ResumableLoader.completed`), that number is saved in every checkpoint, and a loader restored from
a mid-epoch checkpoint yields only the batches the interrupted epoch had not trained on yet.
"""
from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Sampler


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochSampler(Sampler[int]):
    """Indices ``0..n-1``: a permutation per epoch (``shuffle``) or in order; starts after ``skip`` indices."""

    def __init__(self, n: int, *, seed: int = 0, shuffle: bool = True) -> None:
        self.n, self.seed, self.shuffle = int(n), int(seed), shuffle
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != self.epoch:
            self.skip = 0  # the resumed epoch is over: later epochs start at their first batch
        self.epoch = int(epoch)

    def order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator().manual_seed(self.seed)
        for _ in range(epoch):  # replay what a Lightning epoch over a shuffled DataLoader draws
            torch.empty((), dtype=torch.int64).random_(generator=g)  # the iterator's worker base seed
            torch.randperm(self.n, generator=g)  # the epoch's permutation
        torch.empty((), dtype=torch.int64).random_(generator=g)
        return torch.randperm(self.n, generator=g).tolist()

    def _shard(self, order: list[int]) -> list[int]:
        rank, world = _dist()
        if world == 1:
            return order
        total = math.ceil(len(order) / world) * world
        order = order + order[: total - len(order)]
        return order[rank::world]

    def __iter__(self):
        order = self._shard(self.order(self.epoch))
        return iter(order[self.skip:])  # Lightning may iterate a resumed epoch's loader twice: skip both times

    def __len__(self) -> int:
        _, world = _dist()
        return math.ceil(self.n / world)


class ResumableLoader(DataLoader):
    """A DataLoader over an :class:`EpochSampler` that can resume in the middle of an epoch."""

    def __init__(self, dataset, *, batch_size: int, seed: int = 0, shuffle: bool = True, drop_last: bool = False,
                 num_workers: int = 0) -> None:
        self.epoch_sampler = EpochSampler(len(dataset), seed=seed, shuffle=shuffle)
        super().__init__(dataset, batch_size=batch_size, sampler=self.epoch_sampler, drop_last=drop_last,
                         num_workers=num_workers, persistent_workers=num_workers > 0,
                         generator=torch.Generator().manual_seed(seed))  # worker seeds; the global RNG is untouched
        self.completed = 0  # batches of the current epoch done (set by the run's checkpoint callback)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch_sampler.epoch, "completed": int(self.completed)}

    def load_state_dict(self, state: dict) -> None:
        done = int(state.get("completed", 0))
        self.epoch_sampler.set_epoch(int(state.get("epoch", 0)))
        if 0 < done < len(self):  # a mid-epoch checkpoint: skip what that epoch already trained on
            self.epoch_sampler.skip = done * int(self.batch_size)
            self.completed = done
        else:
            self.epoch_sampler.skip = 0
            self.completed = 0


def make_loaders(train_ds, val_ds, *, batch_size: int, seed: int, num_workers: int = 0, shuffle: bool = True):
    """The train loader (resumable, shuffled per epoch, last short batch dropped when the set is larger than
    a batch) and the val loader (in order), as every sonokit run uses them."""
    train = ResumableLoader(train_ds, batch_size=batch_size, seed=seed, shuffle=shuffle,
                            drop_last=len(train_ds) > batch_size, num_workers=num_workers)
    val = None
    if val_ds is not None:
        val = DataLoader(val_ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    return train, val
