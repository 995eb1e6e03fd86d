"""The task contract every supervised model plugs into (segmentation, classification, ...).

* **Model**: any registered model (``model`` + ``model_kwargs``). ``forward`` takes the image and, by name,
  any further inputs its signature asks for that the batch holds (``organ``, ``label``, ``spacing``,
  prompts, ...). It returns a tensor (taken as ``{"logits": tensor}``) or a dict of named outputs
  (``logits``, ``aux_logits``, ``uncertainty``, ...).
* **Losses**: a list of named, weighted terms (:mod:`sonokit.tasks.losses`).
* **Parameters**: freeze / unfreeze patterns and parameter groups with their own lr
  (:mod:`sonokit.tasks.params`); fully frozen modules stay in eval mode; the trainable count is in
  :attr:`param_counts` (the run records it).
* **Augmentation**: one :class:`sonokit.transforms.SegAugment` draw per step from a generator seeded by
  ``(seed, global_step)``, applied to the image and, when present, the mask: a resumed run replays it.

Subclasses implement :meth:`validation_metrics` and name :attr:`target_key`.
"""
from __future__ import annotations

import inspect

import lightning as L
import torch

from ..errors import ConfigError
from ..models import MODELS
from ..transforms import SegAugment
from .losses import build_losses, total_loss
from .params import apply_freeze, frozen_modules, param_groups
from .schedule import adamw_cosine

BATCH_INPUTS = ("organ", "label", "spacing", "mask", "box", "points")  # batch keys a model may ask for


def as_outputs(out) -> dict:
    """A model's return value as a dict of named outputs (a tensor is ``{"logits": tensor}``)."""
    if isinstance(out, torch.Tensor):
        return {"logits": out}
    if isinstance(out, dict) and isinstance(out.get("logits"), torch.Tensor):
        return out
    raise TypeError(f"a model must return a tensor or a dict with a 'logits' tensor, found {type(out).__name__}"
                    + (f" with keys {list(out)}" if isinstance(out, dict) else ""))


def model_inputs(model: torch.nn.Module) -> tuple[str, ...]:
    """Names of the batch keys that ``model.forward`` takes besides the image: the model's ``batch_inputs``
    when it says (e.g. a segmentation model asks for ``organ`` only with an encoder that takes it), else the
    forward signature's parameters named in :data:`BATCH_INPUTS`."""
    if hasattr(model, "batch_inputs"):
        return tuple(model.batch_inputs)
    params = list(inspect.signature(model.forward).parameters.values())[1:]
    return tuple(p.name for p in params if p.name in BATCH_INPUTS
                 and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


class SupervisedTask(L.LightningModule):
    """Args:
        model, model_kwargs: a registered model and its factory arguments.
        loss: loss specs (see :mod:`sonokit.tasks.losses`).
        lr, weight_decay, warmup_epochs: AdamW with linear warm-up and cosine decay per step.
        freeze, unfreeze, groups: parameter patterns (see :mod:`sonokit.tasks.params`).
        augment: keyword arguments of :class:`SegAugment`, or None.
        seed: seeds the augmentation generator.
        image_size, data, meta: recorded in the checkpoint so inference needs nothing but the checkpoint.
    """

    target_key = "mask"
    task_name = "supervised"

    def __init__(self, *, model: str, model_kwargs: dict | None = None, loss: list | None = None, lr: float = 1e-3,
                 weight_decay: float = 1e-4, warmup_epochs: float = 0.0, freeze: list | None = None,
                 unfreeze: list | None = None, groups: list | None = None, augment: dict | None = None,
                 seed: int = 0, image_size: int = 128, data: dict | None = None, meta: dict | None = None) -> None:
        super().__init__()
        if not lr > 0:
            raise ValueError(f"lr must be > 0, found {lr}")
        self.save_hyperparameters()
        self.hparams["task"] = self.task_name
        MODELS.check_kwargs(model, model_kwargs or {}, "model.")
        self.model = MODELS.create(model, **(model_kwargs or {}))
        self.loss_terms = build_losses(loss or self.default_loss(), default_target=self.target_key)
        for i, t in enumerate(self.loss_terms):  # loss modules with parameters or buffers are part of the task
            self.add_module(f"loss_{i}", t.fn)
        self.param_counts = apply_freeze(self.model, freeze or (), unfreeze or ())
        self._frozen = frozen_modules(self.model)
        for m in self._frozen:  # Lightning keeps the modes it finds (it calls no .train() at fit start)
            m.eval()
        self.inputs = model_inputs(self.model)
        self.augment = SegAugment(**augment) if augment is not None else None

    def default_loss(self) -> list:
        raise NotImplementedError

    # -- forward ------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, **extra) -> dict:
        return as_outputs(self.model(x, **extra))

    def run_model(self, batch: dict) -> dict:
        missing = [k for k in self.inputs if k not in batch]
        if missing:
            raise ConfigError(f"model '{self.hparams.model}' takes {', '.join(missing)} as input, but the batch "
                              f"has no such key (batches hold {', '.join(batch)})")
        return self(batch["image"], **{k: batch[k] for k in self.inputs})

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self._frozen:  # frozen modules keep their statistics
            m.eval()
        return self

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if self.training and self.augment is not None and self.trainer is not None and self.trainer.training:
            g = torch.Generator().manual_seed(int(self.hparams.seed) * 1_000_003 + int(self.global_step))
            batch["image"], mask = self.augment(batch["image"], batch.get("mask"), g)
            if mask is not None:
                batch["mask"] = mask
        return batch

    # -- steps --------------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.run_model(batch)
        loss, parts = total_loss(self.loss_terms, out, batch)
        b = batch["image"].shape[0]
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=b)
        if len(parts) > 1:
            for k, v in parts.items():
                self.log(f"train_loss_{k}", v, on_step=False, on_epoch=True, batch_size=b)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self.run_model(batch)
        loss, _ = total_loss(self.loss_terms, out, batch)
        b = batch["image"].shape[0]
        self.log("val_loss", loss, on_epoch=True, prog_bar=False, batch_size=b, sync_dist=True)
        for k, v in self.validation_metrics(out, batch).items():
            self.log(k, v, on_epoch=True, prog_bar=k == self.prog_metric, batch_size=b, sync_dist=True)

    prog_metric = "val_loss"

    def validation_metrics(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        return {}

    def configure_optimizers(self):
        hp = self.hparams
        groups = param_groups(self.model, lr=hp.lr, weight_decay=hp.weight_decay, groups=hp.groups or ())
        return adamw_cosine(self, params=groups, lr=hp.lr, weight_decay=hp.weight_decay,
                            warmup_epochs=hp.warmup_epochs)
