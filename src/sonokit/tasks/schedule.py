"""The optimiser schedule shared by sonokit's tasks: AdamW, linear warm-up, cosine decay per step."""
from __future__ import annotations

import math

import torch


def adamw_cosine(module, *, params=None, lr: float, weight_decay: float, warmup_epochs: float) -> dict:
    """Lightning ``configure_optimizers`` value for ``module`` (a LightningModule attached to a trainer)."""
    opt = torch.optim.AdamW(params if params is not None else module.parameters(), lr=lr, weight_decay=weight_decay)
    trainer = module.trainer
    total = max(1, int(trainer.estimated_stepping_batches))
    warm = 0
    if warmup_epochs > 0 and trainer.max_epochs and trainer.max_epochs > 0:
        warm = int(total * warmup_epochs / trainer.max_epochs)

    def schedule(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
