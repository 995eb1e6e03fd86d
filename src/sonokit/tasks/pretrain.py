"""The contract of a pretraining method: a LightningModule that owns its training step.

A registered SSL method (``sonokit.ssl.SSL_METHODS``) is a subclass of :class:`PretrainMethod`. The run
(:mod:`sonokit.runs.pretrain`) builds it from the config's ``method`` spec plus the arguments the run
provides (:data:`RUN_ARGS`: the encoder spec, the number of images, seed, image size, augmentation and the
optimiser settings), fits it with the same checkpointing, resuming and progress as every other task, and
finally saves :meth:`PretrainMethod.encoder_module` as ``encoder.safetensors``.

A method is free in how it trains: an EMA teacher, a masked-reconstruction decoder, a memory bank, or a
discriminator with its own optimiser (set ``self.automatic_optimization = False`` and return several
optimisers from :meth:`configure_optimizers`) all fit without touching the run. The default
:meth:`configure_optimizers` is AdamW with warm-up and cosine decay over the method's parameter groups.
"""
from __future__ import annotations

import lightning as L
from torch import nn

from .params import apply_freeze, frozen_modules, param_groups
from .schedule import adamw_cosine

# what the run passes to every method's constructor (a method's spec may not set these)
RUN_ARGS = ("encoder", "n_data", "seed", "image_size", "augment", "lr", "weight_decay", "warmup_epochs", "freeze",
            "unfreeze", "groups", "data")


class PretrainMethod(L.LightningModule):
    """Base class. Subclasses call ``super().__init__()``, ``self.save_hyperparameters()``, build their
    modules, then :meth:`setup_params` (freeze patterns), and implement ``training_step`` and
    :meth:`encoder_module`."""

    def setup_params(self) -> None:
        """Apply the freeze patterns; fully frozen modules stay in eval mode (statistics fixed)."""
        hp = self.hparams
        self.param_counts = apply_freeze(self, hp.get("freeze") or (), hp.get("unfreeze") or ())
        self._frozen = frozen_modules(self)
        for m in self._frozen:
            m.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        for m in getattr(self, "_frozen", ()):
            m.eval()
        return self

    def on_train_epoch_start(self) -> None:
        """A streamed dataset (shards) draws its order from the epoch: tell it which one starts."""
        ds = getattr(self.trainer.train_dataloader, "dataset", None)
        if callable(getattr(ds, "set_epoch", None)):
            ds.set_epoch(int(self.current_epoch))

    def encoder_module(self) -> nn.Module:
        """The encoder to save (an encoder: ``forward(x) -> list of maps``, ``out_channels``, ``spec``)."""
        raise NotImplementedError

    def configure_optimizers(self):
        hp = self.hparams
        groups = param_groups(self, lr=hp.lr, weight_decay=hp.weight_decay, groups=hp.get("groups") or ())
        return adamw_cosine(self, params=groups, lr=hp.lr, weight_decay=hp.weight_decay,
                            warmup_epochs=hp.warmup_epochs)
