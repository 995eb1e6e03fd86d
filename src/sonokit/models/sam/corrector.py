"""The Dual False Corrector (SF-RecSAM, ECCV 2024) and the public code's training-free variant (FNPC).

**Uncertainty** (both): T stochastic decoder passes; per pixel the normalised binary entropy of the mean
foreground probability, ``u = H(mean_t p_t) / ln 2`` in [0, 1] (:func:`mc_uncertainty`). No passes
(``mc_samples: 0``) means no estimate: ``u = 0`` and nothing is corrected.

**Dual** (the paper; ``corrector: dual``): the passes are MC dropout on the mask decoder's input (element-wise
dropout of the image embedding, :func:`dropout_masks`), run as one decoder call on B * T rows, without gradient
(the uncertainty is a guide, not a training signal for the base model). Two small conv nets read
``[image, p0, u]`` (p0 the initial probability, detached): the false-positive branch ``fp`` and the
false-negative branch ``fn`` (:class:`DualFalseCorrector`). Fusion with the initial mask (:func:`correct`)::

    p = p0 - u * p0 * sigmoid(fp) + u * (1 - p0) * sigmoid(fn)

so only uncertain pixels move, foreground only down (FP) and background only up (FN), and ``p`` stays in
[0, 1] (its minimum is ``p0 (1 - u) >= 0``, its maximum ``p0 + u (1 - p0) <= 1``). The branches' last biases
start at -4 (``sigmoid = 0.018``): training starts at the initial mask. ``corrector: fp`` / ``fn`` keep one
branch and its term (the paper's "+ FP corrector" / "+ FN corrector" ablation rows).

**FNPC** (the code's ``model/dfc/uncertainty_refine.py``, ``uc_refine_correct``, simplified; ``corrector:
fnpc``, no parameters): the passes are K point prompts sampled in a disc about the box centre
(:func:`disc_points`); votes ``v_k = [p_k > 0.5]``, frequency ``f = mean_k v_k``, ``u = H(f) / ln 2``, the voted
mask ``m = [f > 0.5 max f]``. With ``U = [u > min u + t (max u - min u)]`` (t = 0.9), ``mu`` the mean intensity
of the image under ``m`` and ``I`` the image (:func:`fnpc_refine`)::

    FN flips (background -> foreground):  U & ~m & (alpha mu < I < beta mu)
    FP flips (foreground -> background):  U &  m & (I < alpha mu  or  I > beta mu)
    refined = (m | FN) & ~FP                      (alpha = 0, beta = 1.4 as in the code)

The simplification: one disc of K points about the box centre, prompts without the box, as the code's
``sample_points``; its plotting and file output are left out.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

EPS = 1e-6
EVAL_SEED = 0
LN2 = math.log(2.0)


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """``-(p ln p + (1 - p) ln(1 - p)) / ln 2``: 0 at p in {0, 1}, 1 at p = 0.5."""
    p = p.clamp(EPS, 1 - EPS)
    return (-(p * p.log() + (1 - p) * (1 - p).log()) / LN2).clamp(0.0, 1.0)


def dropout_masks(batch: int, samples: int, shape: tuple[int, ...], p: float, *,
                  generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    """Inverted-dropout masks (B, T, *shape): 0 with probability ``p``, else ``1 / (1 - p)``; drawn from
    ``generator`` on its device (then moved to ``device``), or from the global generator of ``device``."""
    where = generator.device if generator is not None else device
    keep = torch.rand((batch, samples, *shape), generator=generator, device=where) >= p
    return (keep.to(dtype) / (1 - p)).to(device)


def mc_probabilities(decode: Callable[[torch.Tensor], torch.Tensor], emb: torch.Tensor,
                     masks: torch.Tensor) -> torch.Tensor:
    """Foreground probabilities of T masked decoder passes, in one call on B * T rows.

    Args:
        decode: image embeddings (N, C, h, w) -> logits (N, 1, H, W); row ``b * T + t`` is image b's pass t
            (the caller repeats its prompts with ``repeat_interleave(T, 0)``).
        emb: (B, C, h, w); masks: (B, T, C, h, w) from :func:`dropout_masks`.
    Returns: (B, T, H, W).
    """
    B, T = masks.shape[:2]
    rows = (emb.unsqueeze(1) * masks).flatten(0, 1)  # (B * T, C, h, w)
    logits = decode(rows)  # (B * T, 1, H, W)
    return torch.sigmoid(logits.float()).view(B, T, *logits.shape[-2:])


def mc_uncertainty(probs: torch.Tensor) -> torch.Tensor:
    """(B, T, H, W) probabilities -> (B, 1, H, W) normalised entropy of their mean."""
    return binary_entropy(probs.mean(1, keepdim=True))


def correct(p0: torch.Tensor, u: torch.Tensor, fp_logits: torch.Tensor | None,
            fn_logits: torch.Tensor | None) -> torch.Tensor:
    """``p0 - u p0 sigmoid(fp) + u (1 - p0) sigmoid(fn)`` (all (B, 1, H, W)); in [0, 1] for inputs in [0, 1].
    A branch given as None contributes nothing (the single-branch ablations)."""
    p = p0
    if fp_logits is not None:
        p = p - u * p0 * torch.sigmoid(fp_logits)
    if fn_logits is not None:
        p = p + u * (1 - p0) * torch.sigmoid(fn_logits)
    return p


def branch(width: int, init_bias: float) -> nn.Sequential:
    """[image, p0, u] (B, 3, H, W) -> logits (B, 1, H, W): 3x3 convs at dilation 1, 2, 4 (receptive field
    15 px), ReLU, a 1x1 head whose bias starts at ``init_bias``."""
    head = nn.Conv2d(width, 1, 1)
    nn.init.constant_(head.bias, init_bias)
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.ReLU(inplace=True),
                         nn.Conv2d(width, width, 3, padding=4, dilation=4), nn.ReLU(inplace=True), head)


class DualFalseCorrector(nn.Module):
    """The false-positive and false-negative branches: ``(image, p0, u)`` -> ``(fp_logits, fn_logits)``.

    Shapes: image (B, 1, H, W) in [0, 1], p0 and u (B, 1, H, W) in [0, 1] -> two (B, 1, H, W) logit maps.
    ``branches`` keeps only some (``("fp",)``: the FP-only ablation); a missing branch's output is None.
    """

    def __init__(self, width: int = 16, init_bias: float = -4.0, branches: tuple[str, ...] = ("fp", "fn")) -> None:
        super().__init__()
        if not branches or set(branches) - {"fp", "fn"}:
            raise ValueError(f"branches must be a non-empty subset of ('fp', 'fn'), found {branches!r}")
        self.fp_branch = branch(width, init_bias) if "fp" in branches else None
        self.fn_branch = branch(width, init_bias) if "fn" in branches else None

    def forward(self, image: torch.Tensor, p0: torch.Tensor,
                u: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        z = torch.cat([image.to(p0.dtype), p0.detach(), u.to(p0.dtype)], 1)  # (B, 3, H, W)
        return tuple(None if b is None else b(z) for b in (self.fp_branch, self.fn_branch))


# -- FNPC (training-free) -------------------------------------------------------------------------------------

def unit_disc(n: int, samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``samples`` points uniform in the unit disc for each of ``n`` rows: (n, K, 2), drawn on the CPU."""
    r = torch.rand(n, samples, generator=generator).sqrt()  # uniform in area
    theta = torch.rand(n, samples, generator=generator) * (2 * math.pi)
    return torch.stack([r * theta.cos(), r * theta.sin()], -1)


def disc_points(centres: torch.Tensor, radius: torch.Tensor, unit: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Points ``centres (B, 2) + radius (B,) * unit`` (unit: (B or 1, K, 2) from :func:`unit_disc`), clipped to
    the image ``size`` = (H, W): (B, K, 2) ``x, y``."""
    pts = centres[:, None, :] + radius[:, None, None] * unit.to(centres.device, centres.dtype)
    H, W = size
    return torch.stack([pts[..., 0].clamp(0, W - 1), pts[..., 1].clamp(0, H - 1)], -1)


def vote_uncertainty(votes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Binary votes (B, K, H, W) -> (frequency, uncertainty, voted mask), each (B, 1, H, W); the voted mask is
    ``f > 0.5 max f`` per image (the code's ``ave_mask``)."""
    f = votes.float().mean(1, keepdim=True)
    top = f.flatten(1).max(1).values.view(-1, 1, 1, 1)
    return f, binary_entropy(f), (f > 0.5 * top) & (top > 0)


def fnpc_refine(mask: torch.Tensor, u: torch.Tensor, image: torch.Tensor, *, threshold: float = 0.9,
                alpha: float = 0.0, beta: float = 1.4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The intensity rules of the module docstring, per image.

    Args: mask (B, 1, H, W) bool, u (B, 1, H, W), image (B, 1, H, W) intensities (any scale: only ratios to the
    mask's mean matter). Returns ``(refined, fn_flips, fp_flips)``, (B, 1, H, W) bool each. An empty mask has no
    mean intensity: nothing flips (as in the code, where the mean is NaN).
    """
    m = mask.bool()
    lo = u.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = u.flatten(1).max(1).values.view(-1, 1, 1, 1)
    U = u > lo + threshold * (hi - lo)
    n = m.flatten(1).sum(1)
    mu = ((image * m).flatten(1).sum(1) / n.clamp_min(1)).view(-1, 1, 1, 1)
    valid = (n > 0).view(-1, 1, 1, 1)
    fn = U & ~m & (image > alpha * mu) & (image < beta * mu) & valid
    fp = U & m & ((image < alpha * mu) | (image > beta * mu)) & valid
    return (m | fn) & ~fp, fn, fp


def mask_logits(logits: torch.Tensor, mask: torch.Tensor, floor: float = 0.01) -> torch.Tensor:
    """Logits whose sign follows ``mask``: ``logits`` where ``(logits > 0) == mask``, elsewhere the flipped
    magnitude ``(2 mask - 1) * max(|logits|, floor)`` (FNPC's output as logits; differentiable in ``logits``)."""
    m = mask.bool()
    agree = (logits > 0) == m
    return torch.where(agree, logits, (2 * m.to(logits.dtype) - 1) * logits.abs().clamp_min(floor))
