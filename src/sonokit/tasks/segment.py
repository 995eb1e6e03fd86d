"""Supervised segmentation as a Lightning task: Dice + BCE, AdamW, cosine schedule, batched augmentation."""
from __future__ import annotations

import lightning as L
import torch
from monai.losses import DiceCELoss

from ..models import create_model
from ..transforms import SegAugment
from .schedule import adamw_cosine


def soft_dice_per_image(logits: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Hard Dice per image at model resolution, (B,), with the empty-empty = 1 rule of sonokit.metrics."""
    pred = (torch.sigmoid(logits) > threshold).float()
    inter = (pred * target).flatten(1).sum(1)
    denom = pred.flatten(1).sum(1) + target.flatten(1).sum(1)
    return torch.where(denom > 0, 2 * inter / denom.clamp_min(1e-8), torch.ones_like(denom))


class SegmentationTask(L.LightningModule):
    """Binary segmentation of (B, 1, S, S) images.

    Args:
        model: registered model name (``sonokit.models.list_models()``).
        model_kwargs: keyword arguments for the model factory.
        lr, weight_decay: AdamW parameters.
        warmup_epochs: linear warm-up before the cosine decay (in epochs; fractional allowed).
        dice_weight, bce_weight: weights of MONAI's ``DiceCELoss`` terms (sigmoid, BCE for one channel).
        augment: keyword arguments of :class:`sonokit.transforms.SegAugment`, or None for no augmentation.
        seed: seeds the augmentation generator (replayed per global step, so a resumed run continues the
            same sequence of augmentation parameters).
        image_size, data: recorded in the checkpoint so inference needs nothing but the checkpoint.
    """

    def __init__(self, *, model: str = "resunet_resnet18", model_kwargs: dict | None = None, lr: float = 1e-3,
                 weight_decay: float = 1e-4, warmup_epochs: float = 0.0, dice_weight: float = 1.0,
                 bce_weight: float = 1.0, augment: dict | None = None, seed: int = 0, image_size: int = 128,
                 data: dict | None = None) -> None:
        super().__init__()
        if lr <= 0:
            raise ValueError(f"lr must be > 0, found {lr}")
        self.save_hyperparameters()
        self.model = create_model(model, **(model_kwargs or {}))
        self.loss_fn = DiceCELoss(sigmoid=True, lambda_dice=dice_weight, lambda_ce=bce_weight)
        self.augment = SegAugment(**augment) if augment is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if self.training and self.augment is not None and self.trainer is not None and self.trainer.training:
            g = torch.Generator().manual_seed(int(self.hparams.seed) * 1_000_003 + int(self.global_step))
            batch["image"], batch["mask"] = self.augment(batch["image"], batch["mask"], g)
        return batch

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        loss = self.loss_fn(logits, batch["mask"])
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=logits.shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch["image"])
        loss = self.loss_fn(logits, batch["mask"])
        dice = soft_dice_per_image(logits, batch["mask"]).mean()
        b = logits.shape[0]
        self.log("val_loss", loss, on_epoch=True, prog_bar=False, batch_size=b, sync_dist=True)
        self.log("val_dice", dice, on_epoch=True, prog_bar=True, batch_size=b, sync_dist=True)

    def configure_optimizers(self):
        return adamw_cosine(self, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                            warmup_epochs=self.hparams.warmup_epochs)
