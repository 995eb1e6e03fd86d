"""Self-supervised encoder pretraining as a Lightning task (thin): views -> SSL method -> memory-bank update.

Each step draws, from one generator seeded by ``(seed, global_step)`` (so a resumed run replays the same
views): two independent base augmentations of every image (flip, affine, intensity), and the pretext
transformation ``t`` (jigsaw / cross-patch jigsaw / frequency band-stop) of the second. The method's loss
is minimised and the image-view embeddings are written into the memory bank (gathered over all processes
under DDP, so every rank keeps the same bank).
"""
from __future__ import annotations

import lightning as L
import torch

from ..ssl import PretextTransform, create_ssl_method
from ..transforms import SegAugment
from .schedule import adamw_cosine


class PretrainTask(L.LightningModule):
    """Args:
        method: registered SSL method (``pirl``, ``rcl``, ``rcl+perceptual``).
        method_kwargs: keyword arguments of the method (encoder, n_data, temperature, ...).
        pretext: pretext transformation spec, e.g. ``"cross_jigsaw"`` or ``"freq+jigsaw"``.
        grid: jigsaw grid side (6 in the paper).
        freq: keyword arguments of :class:`sonokit.transforms.frequency.FrequencyBandStop`.
        augment: keyword arguments of the base :class:`SegAugment` applied to both views (None: none).
        lr, weight_decay, warmup_epochs: AdamW + cosine schedule.
        seed: seeds the view generator.
        image_size, data: recorded in the checkpoint.
    """

    def __init__(self, *, method: str = "pirl", method_kwargs: dict | None = None, pretext: str = "jigsaw",
                 grid: int = 6, freq: dict | None = None, augment: dict | None = None, lr: float = 1e-3,
                 weight_decay: float = 1e-4, warmup_epochs: float = 0.0, seed: int = 0, image_size: int = 96,
                 data: dict | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = create_ssl_method(method, **(method_kwargs or {}))
        self.pretext = PretextTransform(pretext, grid=grid, freq=freq)
        self.pretext.check_size(image_size)
        self.augment = SegAugment(**augment) if augment is not None else None

    @torch.no_grad()
    def on_train_start(self) -> None:
        """Warm-start the memory bank with the image-view embeddings of every training image (one pass, no
        augmentation, no gradient), so that the NCE normaliser Z, fixed on the first batch, is estimated from
        real embeddings rather than from the bank's random initial vectors (with a random bank Z comes out far
        too small and the NCE loss grows as the bank fills). The pass runs in training mode, as training
        steps do: BatchNorm with batch statistics gives the embeddings that the first batches will be
        compared with; it also moves BatchNorm's running statistics once, on un-augmented images (they are
        saved with the encoder). Every process fills the whole bank in the same order (identical under DDP).
        Skipped on resume: the bank is restored from the checkpoint."""
        bank = self.model.bank
        if bool(bank.filled):
            return
        ds = self.trainer.train_dataloader.dataset
        bs = max(2, int(getattr(self.trainer.train_dataloader, "batch_size", None) or 32))
        for start in range(0, len(ds), bs):
            items = [ds[i] for i in range(start, min(len(ds), start + bs))]
            x = torch.stack([it["image"] for it in items]).to(self.device)
            idx = torch.tensor([it["index"] for it in items], device=self.device)
            z, _ = self.model.embed(x, self.model.f)
            bank.fill(idx, z)
        bank.filled.fill_(True)

    def views(self, x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        v1, v2 = x, x
        if self.augment is not None:
            v1 = self.augment(x, None, g)[0]
            v2 = self.augment(x, None, g)[0]
        return v1, self.pretext(v2, g)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(self.hparams.seed) * 1_000_003 + int(self.global_step))
        v1, v2 = self.views(batch["image"], g)
        index = torch.as_tensor(batch["index"], device=v1.device)
        out = self.model(v1, v2, index, g)
        z, idx = out["z_image"], index
        if self.trainer is not None and self.trainer.world_size > 1:
            z, idx = self.all_gather(z).flatten(0, 1), self.all_gather(idx).flatten()
        self.model.bank.update(idx, z)
        b = v1.shape[0]
        for k, v in out.items():
            if k != "z_image":
                self.log(f"train_{k}" if k != "loss" else "train_loss", v, on_step=True, on_epoch=True,
                         prog_bar=k == "loss", batch_size=b)
        return out["loss"]

    def configure_optimizers(self):
        return adamw_cosine(self, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                            warmup_epochs=self.hparams.warmup_epochs)
