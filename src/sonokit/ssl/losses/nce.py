"""PIRL's noise-contrastive estimation (NCE) loss with memory-bank negatives.

Misra & van der Maaten, "Self-Supervised Learning of Pretext-Invariant Representations", CVPR 2020,
as used for the PIRL baseline of Ellis et al. 2025. With cosine similarity ``s`` of L2-normalised
embeddings, temperature ``τ`` and a dataset of ``|D|`` images, a pair (u, v) is scored against uniform
noise (each of ``N`` negatives has noise probability ``1/|D|``):

    P(u, v) = exp(s(u, v) / τ) / Z                          (Z: the NCE normaliser, a constant)
    h(u, v) = P(u, v) / (P(u, v) + N / |D|)                  (PIRL Eq. 2)

    L_NCE(m_I, z) = -log h(m_I, z) - Σ_{I' ∈ D_N} log(1 - h(z, m_I'))       (PIRL Eq. 3)

where ``m_I`` is the memory-bank entry of image ``I`` (the positive) and ``m_I'`` are ``N`` memory-bank
entries of other images (the negatives). PIRL's objective mixes the transformed view ``g(v_{I^t})`` and the
image view ``f(v_I)``:

    L = λ L_NCE(m_I, g(v_{I^t})) + (1 - λ) L_NCE(m_I, f(v_I)),   λ = 0.5      (PIRL Eq. 5)

``Z`` follows the official implementation (VISSL ``NCECriterion``): estimated once, on the first batch, as
``mean(exp(s/τ)) * |D|`` so that ``P`` averages ``1/|D|``, then frozen. lightly's ``NTXentLoss`` is the
softmax (InfoNCE) form with a FIFO queue, not PIRL's binary NCE with a per-image bank, hence this module.
All logs are computed with ``softplus`` so large ``s/τ`` do not overflow.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def estimate_log_z(pos_sim: torch.Tensor, neg_sim: torch.Tensor, *, temperature: float, n_data: int) -> torch.Tensor:
    """``log Z = log(mean(exp(s/τ)) * |D|)`` over all positive and negative similarities of one batch."""
    s = torch.cat([pos_sim.reshape(-1), neg_sim.reshape(-1)]).detach().float() / temperature
    return torch.logsumexp(s, 0) - math.log(s.numel()) + math.log(n_data)


def nce_loss(pos_sim: torch.Tensor, neg_sim: torch.Tensor, *, temperature: float, log_z: torch.Tensor | float,
             n_data: int) -> torch.Tensor:
    """PIRL Eq. 3 averaged over the batch.

    Args:
        pos_sim: (B,) cosine similarity of each query with its positive (its memory-bank entry).
        neg_sim: (B, N) cosine similarities of each query with N memory-bank negatives.
        temperature: τ.
        log_z: log of the NCE normaliser Z (see :func:`estimate_log_z`).
        n_data: |D|, the number of images in the memory bank.
    """
    if pos_sim.ndim != 1 or neg_sim.ndim != 2 or neg_sim.shape[0] != pos_sim.shape[0]:
        raise ValueError(f"nce_loss expects pos_sim (B,) and neg_sim (B, N); found {tuple(pos_sim.shape)}, {tuple(neg_sim.shape)}")
    log_k = math.log(neg_sim.shape[1] / n_data)  # log(N / |D|)
    a_pos = pos_sim.float() / temperature - log_z  # log P
    a_neg = neg_sim.float() / temperature - log_z
    log_h_pos = -F.softplus(log_k - a_pos)  # log(P / (P + k))
    log_1m_h_neg = -F.softplus(a_neg - log_k)  # log(k / (P + k))
    return -(log_h_pos + log_1m_h_neg.sum(1)).mean()


def pirl_loss(l_transformed: torch.Tensor, l_image: torch.Tensor, *, lam: float = 0.5) -> torch.Tensor:
    """PIRL Eq. 5: ``λ L_NCE(m_I, g(v_{I^t})) + (1 - λ) L_NCE(m_I, f(v_I))``."""
    return lam * l_transformed + (1 - lam) * l_image
