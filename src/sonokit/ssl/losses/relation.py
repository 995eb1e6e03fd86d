"""Relation Contrastive Loss (RCL; Ellis et al. 2025, Sec. III-C).

A fixed cosine similarity is replaced by a learned metric: a small relation network ``h_β`` (two fully
connected layers, ReLU then Sigmoid, after Sung et al. 2018, "Learning to Compare") scores the
element-wise product of two embeddings:

    s⁺ = h_β(z ⊙ m_I)        (positive: the same image's memory-bank entry)
    s⁻ = h_β(z ⊙ m_I')       (negative: another image's entry)

(the product is scaled by the embedding size D, see :class:`RelationNetwork`)

and is trained, together with the encoder, by a mean-squared error against 1 for positives and 0 for
negatives:

    L_RCL(z) = mean_B (s⁺ - 1)² + mean_{B,N} (s⁻)²

The positive and negative terms are averaged separately so that the N negatives per query do not drown
the single positive (an MSE over all pairs would weight them N:1); the paper's exact normalisation was not
available to us. As for NCE, the transformed and image views are mixed with λ = 0.5 (PIRL Eq. 5).
"""
from __future__ import annotations

import torch
from torch import nn


def relation_mse(s_pos: torch.Tensor, s_neg: torch.Tensor) -> torch.Tensor:
    """``mean (s⁺ - 1)² + mean (s⁻ - 0)²`` for scores in [0, 1]: s_pos (B,), s_neg (B, N)."""
    return ((s_pos - 1) ** 2).mean() + (s_neg**2).mean()


class RelationNetwork(nn.Module):
    """``h_β``: two (…, D) embeddings -> (…,) similarity in (0, 1). Linear -> ReLU -> Linear -> Sigmoid.

    The input is ``D · (u ⊙ v)``: for unit vectors the entries of ``u ⊙ v`` are O(1/D) (they sum to the
    cosine similarity), so without the factor ``D`` the network would start from a near-constant input and
    output 0.5 for every pair for many steps. The factor makes the entries O(1) (their mean is the cosine).
    """

    def __init__(self, dim: int = 128, hidden: int = 64) -> None:
        super().__init__()
        if dim < 1 or hidden < 1:
            raise ValueError(f"relation network sizes must be >= 1, found dim={dim}, hidden={hidden}")
        self.dim = dim
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1), nn.Sigmoid())

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.net(self.dim * u * v).squeeze(-1)


class RelationContrastiveLoss(nn.Module):
    """``L_RCL`` for queries z (B, D), their positives (B, D) and negatives (B, N, D)."""

    def __init__(self, dim: int = 128, hidden: int = 64) -> None:
        super().__init__()
        self.relation = RelationNetwork(dim, hidden)

    def forward(self, z: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        s_pos = self.relation(z, pos)  # (B,)
        s_neg = self.relation(z[:, None, :], neg)  # (B, N)
        return relation_mse(s_pos, s_neg)
