"""PIRL's memory bank: one L2-normalised embedding per training image, updated by exponential moving average.

    m_I ← normalise(μ m_I + (1 - μ) f(v_I)),  μ = 0.5           (PIRL Sec. 3.2; VISSL ``momentum: 0.5``)

Unlike MoCo's FIFO queue (lightly's ``MemoryBankModule``), entries are addressed by image index, so the
positive for image ``I`` is its own entry ``m_I`` and negatives are entries of other images. The bank is a
registered buffer: it is saved in checkpoints and a resumed run continues with the same bank.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MemoryBank(nn.Module):
    """(size, dim) bank of unit vectors, initialised at random (seeded) as in VISSL."""

    def __init__(self, size: int, dim: int = 128, *, momentum: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        if size < 2:
            raise ValueError(f"a memory bank needs >= 2 images (one positive, one negative), found {size}")
        if not 0 <= momentum < 1:
            raise ValueError(f"memory bank momentum must be in [0, 1), found {momentum}")
        self.momentum = float(momentum)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("bank", F.normalize(torch.randn(size, dim, generator=g), dim=1))
        self.register_buffer("filled", torch.tensor(False))  # set once real embeddings were written (fill)

    @property
    def size(self) -> int:
        return self.bank.shape[0]

    def positives(self, index: torch.Tensor) -> torch.Tensor:
        """(B,) image indices -> (B, D) their entries."""
        return self.bank[index]

    def negative_indices(self, index: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        """(B,) indices -> (B, n) indices drawn uniformly (with replacement) from the OTHER images."""
        n = min(int(n), self.size - 1) if n > 0 else self.size - 1
        draw = torch.randint(0, self.size - 1, (index.shape[0], n), generator=generator).to(index.device)
        return draw + (draw >= index[:, None]).long()  # skip each query's own entry

    def negatives(self, index: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        """(B,) indices -> (B, n, D) negative entries."""
        return self.bank[self.negative_indices(index, n, generator)]

    @torch.no_grad()
    def fill(self, index: torch.Tensor, emb: torch.Tensor) -> None:
        """Overwrite entries with (normalised) embeddings; used to warm-start the bank before training."""
        self.bank[index] = F.normalize(emb.detach().float(), dim=1).to(self.bank.dtype)

    @torch.no_grad()
    def update(self, index: torch.Tensor, emb: torch.Tensor) -> None:
        """EMA update of the entries ``index`` (B,) with embeddings (B, D) (normalised here)."""
        new = self.momentum * self.bank[index] + (1 - self.momentum) * F.normalize(emb.detach().float(), dim=1)
        self.bank[index] = F.normalize(new, dim=1).to(self.bank.dtype)
