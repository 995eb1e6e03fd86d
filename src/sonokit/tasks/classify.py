"""Image classification as a Lightning task: the supervised contract with accuracy, balanced accuracy, AUROC.

Labels are integer class indices (the order of ``data.classes``); -1 marks an unknown label, which the
cross-entropy ignores and the metrics skip. Validation gathers the epoch's logits and labels and logs
``val_accuracy``, ``val_balanced_accuracy`` (mean per-class recall) and ``val_auroc`` (one-vs-rest, macro;
NaN while a class is absent), computed by :mod:`sonokit.metrics.classification`.
"""
from __future__ import annotations

import torch

from ..metrics.classification import classification_metrics
from .supervised import SupervisedTask


class ClassificationTask(SupervisedTask):
    target_key = "label"
    task_name = "classify"
    prog_metric = "val_balanced_accuracy"

    def default_loss(self) -> list:
        return [{"name": "ce"}]

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_metrics(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        self._val.append((outputs["logits"].detach().float().cpu(), batch["label"].detach().cpu()))
        return {}

    def on_validation_epoch_end(self) -> None:
        if not getattr(self, "_val", None):
            return
        logits = torch.cat([v[0] for v in self._val])
        labels = torch.cat([v[1] for v in self._val])
        if self.trainer is not None and self.trainer.world_size > 1:
            logits, labels = self.all_gather(logits).flatten(0, 1), self.all_gather(labels).flatten()
        m = classification_metrics(torch.softmax(logits, 1).numpy(), labels.numpy())
        for k in ("accuracy", "balanced_accuracy", "auroc"):
            self.log(f"val_{k}", float(m[k]), prog_bar=k == "balanced_accuracy")
        self._val = []
