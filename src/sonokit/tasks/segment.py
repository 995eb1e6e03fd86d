"""Binary segmentation as a Lightning task: the supervised contract with Dice validation."""
from __future__ import annotations

import torch

from ..metrics.segmentation import binary_overlap
from .supervised import SupervisedTask


class SegmentationTask(SupervisedTask):
    """Binary segmentation of (B, 1, S, S) images; the model's ``logits`` are (B, 1, S, S).

    Default loss: MONAI's Dice + BCE (``[{name: dice_ce}]``). Validation logs ``val_loss`` and ``val_dice``
    (hard Dice at model resolution per image, mean over the batch, empty-empty = 1 as in
    :mod:`sonokit.metrics.segmentation`). See :class:`SupervisedTask` for the arguments.
    """

    target_key = "mask"
    task_name = "segment"
    prog_metric = "val_dice"

    def default_loss(self) -> list:
        return [{"name": "dice_ce"}]

    def validation_metrics(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        pred = torch.sigmoid(outputs["logits"]) > 0.5
        return {"val_dice": binary_overlap(pred, batch["mask"] > 0.5)["dice"].float().mean()}
