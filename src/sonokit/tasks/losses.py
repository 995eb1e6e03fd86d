"""Training losses as a configured list of named, weighted terms.

A config's ``loss`` is a list of specs ``{name, weight, output, target, **kwargs}``: ``name`` picks a
registered loss (``sonokit models --kind loss``), ``weight`` scales it (default 1), ``output`` names the
model output it reads (default ``logits``; models may return a dict of named outputs) and ``target`` the
batch key it compares with (default: the task's, ``mask`` or ``label``); the other keys go to the loss
factory and are checked against its signature. The total loss is the weighted sum; each term is logged as
``train_loss_<name>``.

A loss module whose ``takes_all`` attribute is true is called as ``loss(outputs, batch)`` with every model
output and the whole batch (for terms that combine several outputs, e.g. an uncertainty-guided term);
otherwise as ``loss(outputs[output], batch[target])``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry, split_spec

LOSSES: Registry[nn.Module] = Registry("loss")
RESERVED = ("weight", "output", "target")


@LOSSES.register("dice_ce")
def dice_ce(*, lambda_dice: float = 1.0, lambda_ce: float = 1.0, sigmoid: bool = True) -> nn.Module:
    """Dice + binary cross-entropy on logits (MONAI DiceCELoss), sonokit's default segmentation loss."""
    from monai.losses import DiceCELoss

    return DiceCELoss(sigmoid=sigmoid, lambda_dice=lambda_dice, lambda_ce=lambda_ce)


@LOSSES.register("dice")
def dice(*, sigmoid: bool = True, squared_pred: bool = False, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5) -> nn.Module:
    """Soft Dice loss on logits (MONAI DiceLoss)."""
    from monai.losses import DiceLoss

    return DiceLoss(sigmoid=sigmoid, squared_pred=squared_pred, smooth_nr=smooth_nr, smooth_dr=smooth_dr)


@LOSSES.register("bce")
def bce(*, pos_weight: float | None = None) -> nn.Module:
    """Binary cross-entropy on logits (``BCEWithLogitsLoss``); targets are float masks or 0/1 labels."""
    return nn.BCEWithLogitsLoss(pos_weight=None if pos_weight is None else torch.tensor(float(pos_weight)))


@LOSSES.register("focal")
def focal(*, gamma: float = 2.0, alpha: float | None = None) -> nn.Module:
    """Sigmoid focal loss on logits (MONAI FocalLoss, Lin et al. 2017)."""
    from monai.losses import FocalLoss

    return FocalLoss(gamma=gamma, alpha=alpha, use_softmax=False)


class _CrossEntropy(nn.Module):
    def __init__(self, weight: list[float] | None, label_smoothing: float) -> None:
        super().__init__()
        self.register_buffer("weight", None if weight is None else torch.tensor(weight, dtype=torch.float32))
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits, target.long(), weight=self.weight,
                                           label_smoothing=self.label_smoothing, ignore_index=-1)


@LOSSES.register("ce")
def ce(*, class_weights: list[float] | str | None = None, label_smoothing: float = 0.0) -> nn.Module:
    """Multi-class cross-entropy on logits (B, K) with integer labels; label -1 (unknown) is ignored.

    ``class_weights``: per-class weights, or ``"balanced"``: ``n / (K * n_k)`` from the training set's class
    counts (the run fills them in: :func:`resolve_balanced`)."""
    if isinstance(class_weights, str):
        raise ConfigError(f"loss ce: class_weights '{class_weights}' must be a list of per-class weights, or "
                          "'balanced' in a training config (the run computes it from the training labels)")
    return _CrossEntropy(class_weights, label_smoothing)


def resolve_balanced(specs: list, counts: list[int]) -> list:
    """Loss specs with ``class_weights: balanced`` replaced by ``n / (K * n_k)`` for the class ``counts``."""
    out = []
    for s in specs:
        s = dict(s)
        if s.get("class_weights") == "balanced":
            if any(c == 0 for c in counts):
                raise ConfigError(f"loss {s.get('name')}: class_weights 'balanced' needs every class in the training "
                                  f"set; the counts are {counts}")
            n, k = sum(counts), len(counts)
            s["class_weights"] = [round(n / (k * c), 6) for c in counts]
        out.append(s)
    return out


@dataclass
class LossTerm:
    name: str
    weight: float
    output: str
    target: str
    fn: nn.Module

    def __call__(self, outputs: dict, batch: dict) -> torch.Tensor:
        if getattr(self.fn, "takes_all", False):
            return self.fn(outputs, batch)
        if self.output not in outputs:
            raise ConfigError(f"loss '{self.name}' reads model output '{self.output}', but the model returns "
                              f"{', '.join(outputs)}; set the term's 'output'")
        if self.target not in batch:
            raise ConfigError(f"loss '{self.name}' compares with batch key '{self.target}', but batches hold "
                              f"{', '.join(k for k in batch if not k.startswith('_'))}; set the term's 'target'")
        return self.fn(outputs[self.output], batch[self.target])


def check_loss_specs(specs: list, where: str = "loss") -> None:
    """Validate loss specs against the registry before anything is built."""
    if not specs:
        raise ConfigError(f"{where} is empty; give at least one term, e.g. [{{name: dice_ce}}]")
    for i, s in enumerate(specs):
        name, kw = split_spec(s, "loss", f"{where}[{i}]")
        LOSSES.check_kwargs(name, {k: v for k, v in kw.items() if k not in RESERVED}, f"{where}[{i}].")
        w = kw.get("weight", 1.0)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
            raise ConfigError(f"{where}[{i}].weight must be a number >= 0, found {w!r}")


def build_losses(specs: list, *, default_target: str) -> list[LossTerm]:
    """:class:`LossTerm` s from loss specs (checked by :func:`check_loss_specs`)."""
    check_loss_specs(specs)
    terms = []
    for i, s in enumerate(specs):
        name, kw = split_spec(s, "loss", f"loss[{i}]")
        fac = {k: v for k, v in kw.items() if k not in RESERVED}
        terms.append(LossTerm(name, float(kw.get("weight", 1.0)), str(kw.get("output", "logits")),
                              str(kw.get("target", default_target)), LOSSES.create(name, **fac)))
    names = [t.name for t in terms]
    if len(set(names)) != len(names):  # two terms of one loss: log them apart
        for i, t in enumerate(terms):
            t.name = f"{t.name}{i}"
    return terms


def total_loss(terms: list[LossTerm], outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of the terms and each term's (unweighted) value."""
    parts = {t.name: t(outputs, batch) for t in terms}
    total = sum(t.weight * parts[t.name] for t in terms)
    return total, parts
from . import losses_sam  # noqa: E402,F401  (registers the SF-RecSAM losses)
