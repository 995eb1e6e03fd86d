"""Losses of SF-RecSAM (ECCV 2024, "Loss & Training"), registered for the ``sfrecsam`` / ``sam_adapter`` models.

The paper names three parts and a two-stage schedule; the formulas are sonokit's (the paper gives none).
g is the ground-truth mask (batch key ``mask``) in {0, 1}, p = sigmoid(logits), sums run over all pixels of
the batch unless said otherwise.

* ``sam_dice_bce`` (stage 1, "main segmentation loss") — :func:`dice_bce` on several outputs::

      L = sum_k w_k [ BCE(l_k, g) + Dice(l_k, g) ],   k in outputs (default logits, coarse_logits)
      BCE = mean_i -(g_i ln p_i + (1 - g_i) ln(1 - p_i)),
      Dice = mean_b [1 - (2 sum_i p_i g_i + e) / (sum_i p_i + sum_i g_i + e)],  e = 1e-5, sums per image b

  (MONAI's DiceCELoss on one output, which the default ``dice_ce`` term already is on ``logits``.)
* ``sam_correction`` (stage 2, "correction loss") — the FP branch learns which uncertain predicted-foreground
  pixels are background, the FN branch which uncertain predicted-background pixels are foreground::

      U = [u > tau],  F = [sigmoid(initial_logits) > 0.5]
      L_fp = sum_{U & F} BCE(fp_logits, 1 - g) / max(|U & F|, 1)
      L_fn = sum_{U & ~F} BCE(fn_logits, g) / max(|U & ~F|, 1)
      L = w_fp L_fp + w_fn L_fn                         (tau = 0.1, w_fp = w_fn = 1)

  (a single-branch model, ``corrector: fp`` or ``fn``, has only its term).

* ``sam_uncertainty_bce`` (stage 2, "uncertainty-guided loss") — the final mask's BCE, weighted up where the
  model is uncertain (its errors concentrate there)::

      L = mean_i (1 + gamma u_i) BCE(logits_i, g_i)      (gamma = 1)

  The uncertainty is MC-dropout entropy of the frozen base model, a fixed weight here (no gradient): sonokit
  reads the paper's "encouraging higher uncertainty in truly challenging regions" as emphasising them.

All three read several model outputs, so they are ``takes_all`` terms (called with every output and the batch).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .losses import LOSSES

SMOOTH = 1e-5


def soft_dice(logits: torch.Tensor, target: torch.Tensor, eps: float = SMOOTH) -> torch.Tensor:
    """``mean_b [1 - (2 sum p g + e) / (sum p + sum g + e)]`` over images b of (B, 1, H, W) logits and masks."""
    p = torch.sigmoid(logits.float()).flatten(1)
    g = target.float().flatten(1)
    return (1 - (2 * (p * g).sum(1) + eps) / (p.sum(1) + g.sum(1) + eps)).mean()


def dice_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy on logits + :func:`soft_dice`."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float()) + soft_dice(logits, target)


def correction_loss(fp_logits: torch.Tensor | None, fn_logits: torch.Tensor | None, initial_logits: torch.Tensor,
                    uncertainty: torch.Tensor, target: torch.Tensor, *, tau: float = 0.1,
                    fp_weight: float = 1.0, fn_weight: float = 1.0) -> torch.Tensor:
    """``w_fp L_fp + w_fn L_fn`` of the module docstring; all (B, 1, H, W); a branch given as None (the
    single-branch models ``corrector: fp`` / ``fn``) has no term."""
    g = target.float()
    U = uncertainty.detach() > tau
    F_ = torch.sigmoid(initial_logits.detach().float()) > 0.5
    total = initial_logits.new_zeros(())
    for logits, tgt, region, w in ((fp_logits, 1 - g, U & F_, fp_weight), (fn_logits, g, U & ~F_, fn_weight)):
        if logits is not None:
            bce = F.binary_cross_entropy_with_logits(logits.float(), tgt, reduction="none")
            region = region.float()
            total = total + w * (bce * region).sum() / region.sum().clamp_min(1)
    return total


def uncertainty_bce(logits: torch.Tensor, uncertainty: torch.Tensor, target: torch.Tensor, *,
                    gamma: float = 1.0) -> torch.Tensor:
    """``mean (1 + gamma u) BCE(logits, g)``; all (B, 1, H, W)."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    return ((1 + gamma * uncertainty.detach().float()) * bce).mean()


def _need(outputs: dict, batch: dict, names: Sequence[str], loss: str) -> list[torch.Tensor]:
    missing = [n for n in names if n not in outputs]
    if missing:
        raise ConfigError(f"loss '{loss}' reads model outputs {', '.join(names)}, but the model returns "
                          f"{', '.join(outputs)} (missing {', '.join(missing)}); these outputs exist for "
                          f"model sfrecsam with corrector: dual (fp / fn: one branch)")
    if "mask" not in batch:
        raise ConfigError(f"loss '{loss}' compares with the batch key 'mask', but batches hold "
                          f"{', '.join(k for k in batch if not k.startswith('_'))}")
    return [outputs[n] for n in names] + [batch["mask"]]


class DeepDiceBCE(nn.Module):
    takes_all = True

    def __init__(self, outputs: Sequence[str], weights: Sequence[float]) -> None:
        super().__init__()
        self.outputs, self.weights = list(outputs), [float(w) for w in weights]

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        *maps, g = _need(outputs, batch, self.outputs, "sam_dice_bce")
        return sum(w * dice_bce(m, g) for w, m in zip(self.weights, maps))


class CorrectionLoss(nn.Module):
    takes_all = True

    def __init__(self, tau: float, fp_weight: float, fn_weight: float) -> None:
        super().__init__()
        self.kw = dict(tau=float(tau), fp_weight=float(fp_weight), fn_weight=float(fn_weight))

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        branches = tuple(k for k in ("fp_logits", "fn_logits") if k in outputs) or ("fp_logits", "fn_logits")
        *_, init, u, g = got = _need(outputs, batch, branches + ("initial_logits", "uncertainty"), "sam_correction")
        fp = got[0] if "fp_logits" in branches else None
        fn = got[branches.index("fn_logits")] if "fn_logits" in branches else None
        return correction_loss(fp, fn, init, u, g, **self.kw)


class UncertaintyBCE(nn.Module):
    takes_all = True

    def __init__(self, gamma: float) -> None:
        super().__init__()
        self.gamma = float(gamma)

    def forward(self, outputs: dict, batch: dict) -> torch.Tensor:
        logits, u, g = _need(outputs, batch, ("logits", "uncertainty"), "sam_uncertainty_bce")
        return uncertainty_bce(logits, u, g, gamma=self.gamma)


@LOSSES.register("sam_dice_bce")
def sam_dice_bce(*, outputs: Sequence[str] = ("logits", "coarse_logits"),
                 weights: Sequence[float] | None = None) -> nn.Module:
    """Dice + BCE on several model outputs (default logits and coarse_logits), weighted: SF-RecSAM stage 1."""
    if isinstance(outputs, str) or not outputs or not all(isinstance(o, str) for o in outputs):
        raise ConfigError(f"loss sam_dice_bce: outputs must be a non-empty list of output names; found {outputs!r}")
    weights = [1.0] * len(outputs) if weights is None else list(weights)
    if len(weights) != len(outputs) or any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0
                                           for w in weights):
        raise ConfigError(f"loss sam_dice_bce: weights must be {len(outputs)} numbers >= 0, one per output "
                          f"({', '.join(outputs)}); found {weights!r}")
    return DeepDiceBCE(outputs, weights)


@LOSSES.register("sam_correction")
def sam_correction(*, tau: float = 0.1, fp_weight: float = 1.0, fn_weight: float = 1.0) -> nn.Module:
    """BCE of the FP / FN corrector maps on uncertain predicted-foreground / -background pixels: stage 2."""
    if not 0 <= tau < 1:
        raise ConfigError(f"loss sam_correction: tau must be in [0, 1); found {tau!r}")
    return CorrectionLoss(tau, fp_weight, fn_weight)


@LOSSES.register("sam_uncertainty_bce")
def sam_uncertainty_bce(*, gamma: float = 1.0) -> nn.Module:
    """BCE of the final mask weighted by 1 + gamma * uncertainty: SF-RecSAM's uncertainty-guided term."""
    if gamma < 0:
        raise ConfigError(f"loss sam_uncertainty_bce: gamma must be >= 0; found {gamma!r}")
    return UncertaintyBCE(gamma)
