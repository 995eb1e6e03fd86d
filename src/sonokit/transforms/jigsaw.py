"""Jigsaw views for pretext learning (PIRL; Ellis et al. 2025, Sec. III-A2), batched on tensors.

A view is built in two steps, as everywhere in :mod:`sonokit.transforms`: ``sample`` draws the random
parameters from a ``torch.Generator`` (replaying the generator replays the view), ``apply`` is
deterministic given them.

* :class:`Jigsaw` splits the image into a ``grid x grid`` array of patches (6 x 6 = 36 in the paper) and
  shuffles all of them by one random permutation per image.
* :class:`CrossPatchJigsaw` picks a random seed patch per image. The patches in its row and in its column
  are *focal*: each stays in place and gets one weak augmentation (left-right flip, up-down flip or a 180°
  rotation, uniformly). The remaining *non-focal* patches are shuffled among the non-focal positions only,
  so one row and one column of tissue layers keep their geometry.

Patches are numbered row-major: patch ``k`` sits at row ``k // grid`` and column ``k % grid``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

WEAK_OPS = ("hflip", "vflip", "rot180")  # codes 1, 2, 3 in CrossPatchJigsaw params; 0 = untouched


def _check_grid(x: torch.Tensor, grid: int) -> tuple[int, int, int, int]:
    if x.ndim != 4:
        raise ValueError(f"jigsaw expects a batch (B, C, H, W), found shape {tuple(x.shape)}")
    B, C, H, W = x.shape
    if H % grid or W % grid:
        raise ValueError(f"a {grid}x{grid} jigsaw grid does not divide a {H}x{W} image; "
                         f"use an image size that is a multiple of {grid} (e.g. {grid * max(1, H // grid)})")
    return B, C, H, W


def to_patches(x: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, grid*grid, C, H/grid, W/grid), patches in row-major order."""
    B, C, H, W = _check_grid(x, grid)
    ph, pw = H // grid, W // grid
    p = x.reshape(B, C, grid, ph, grid, pw)  # (B, C, gr, ph, gc, pw)
    return p.permute(0, 2, 4, 1, 3, 5).reshape(B, grid * grid, C, ph, pw)


def from_patches(p: torch.Tensor, grid: int) -> torch.Tensor:
    """Inverse of :func:`to_patches`: (B, grid*grid, C, ph, pw) -> (B, C, grid*ph, grid*pw)."""
    B, N, C, ph, pw = p.shape
    if N != grid * grid:
        raise ValueError(f"expected {grid * grid} patches for a {grid}x{grid} grid, found {N}")
    x = p.reshape(B, grid, grid, C, ph, pw).permute(0, 3, 1, 4, 2, 5)  # (B, C, gr, ph, gc, pw)
    return x.reshape(B, C, grid * ph, grid * pw)


def permute_patches(x: torch.Tensor, perm: torch.Tensor, grid: int) -> torch.Tensor:
    """Place source patch ``perm[b, k]`` at position ``k``: (B, C, H, W), perm (B, N) -> (B, C, H, W)."""
    p = to_patches(x, grid)  # (B, N, C, ph, pw)
    idx = perm.to(x.device)[:, :, None, None, None].expand_as(p)
    return from_patches(torch.gather(p, 1, idx), grid)


def focal_mask(seed: torch.Tensor, grid: int) -> torch.Tensor:
    """(B,) seed patch indices -> (B, grid*grid) bool, True for patches in the seed's row or column."""
    k = torch.arange(grid * grid, device=seed.device)
    row, col = k // grid, k % grid  # (N,)
    return (row[None] == (seed // grid)[:, None]) | (col[None] == (seed % grid)[:, None])


@dataclass
class Jigsaw:
    """Shuffle all ``grid * grid`` patches by a random permutation per image."""

    grid: int = 6

    def __post_init__(self) -> None:
        if int(self.grid) != self.grid or self.grid < 2:
            raise ValueError(f"jigsaw grid must be an integer >= 2, found {self.grid}")

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        n = self.grid * self.grid
        return {"perm": torch.argsort(torch.rand(batch, n, generator=generator), dim=1)}  # (B, N)

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return permute_patches(x, params["perm"], self.grid)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0], generator))


@dataclass
class CrossPatchJigsaw:
    """Cross-patch jigsaw (Ellis et al. 2025): focal row + column kept in place with a weak augmentation,
    the other patches shuffled among themselves.

    Params (per image): ``seed`` (B,) the seed patch; ``perm`` (B, N) a permutation that fixes every focal
    position and maps non-focal positions to non-focal sources; ``op`` (B, N) the weak operation code per
    patch (0 none for non-focal patches, 1 hflip, 2 vflip, 3 rot180 for focal ones).
    """

    grid: int = 6

    def __post_init__(self) -> None:
        if int(self.grid) != self.grid or self.grid < 2:
            raise ValueError(f"cross-patch jigsaw grid must be an integer >= 2, found {self.grid}")

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        g, n = generator, self.grid * self.grid
        seed = torch.randint(0, n, (batch,), generator=g)
        focal = focal_mask(seed, self.grid)  # (B, N)
        keys = torch.rand(batch, n, generator=g)
        op = torch.randint(1, len(WEAK_OPS) + 1, (batch, n), generator=g) * focal
        perm = torch.arange(n).repeat(batch, 1)  # (B, N) identity
        for b in range(batch):  # shuffle the non-focal positions among themselves
            nf = (~focal[b]).nonzero().squeeze(1)
            perm[b, nf] = nf[torch.argsort(keys[b, nf])]
        return {"seed": seed, "perm": perm, "op": op}

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        p = to_patches(x, self.grid)  # (B, N, C, ph, pw)
        op = params["op"].to(x.device)[:, :, None, None, None]
        hf, vf = p.flip(-1), p.flip(-2)
        p = torch.where(op == 1, hf, torch.where(op == 2, vf, torch.where(op == 3, hf.flip(-2), p)))
        idx = params["perm"].to(x.device)[:, :, None, None, None].expand_as(p)
        return from_patches(torch.gather(p, 1, idx), self.grid)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0], generator))
