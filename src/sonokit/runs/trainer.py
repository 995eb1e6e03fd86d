"""The Lightning Trainer every sonokit run uses, built from the config's ``trainer`` and ``optim`` sections."""
from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Callable

from ..errors import ConfigError
from .callbacks import AtomicCheckpointIO, EpochLine, RunState

PROGRESS = ("auto", "rich", "lines", "none")


def best_checkpoint(out: Path, monitor: str, *, maximize: bool):
    """Lightning's ModelCheckpoint keeping the best epoch by ``monitor`` as ``checkpoints/best.ckpt``. It saves
    when validation ends, so the run's last.ckpt (written at the end of the epoch, after it) records the
    updated best score; a resumed run then never replaces best.ckpt with a worse model."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    return ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor=monitor,
                           mode="max" if maximize else "min", save_top_k=1, save_last=False,
                           enable_version_counter=False, save_on_train_epoch_end=False)


def progress_callbacks(mode: str, log: Callable[[str], None] | None, prefix: str = "") -> tuple[list, bool]:
    """(callbacks, use_rich) for ``trainer.progress``: a rich bar on a terminal, one line per epoch otherwise."""
    if mode not in PROGRESS:
        raise ConfigError(f"trainer.progress must be one of {', '.join(PROGRESS)}; found '{mode}'")
    use_rich = mode == "rich" or (mode == "auto" and sys.stderr.isatty() and log is not None and not prefix)
    if use_rich:
        from lightning.pytorch.callbacks import RichProgressBar

        return [RichProgressBar()], True
    if mode == "none" or log is None:
        return [], False
    return [EpochLine(log, prefix=prefix)], False


def make_trainer(cfg, out: Path, callbacks: list, *, log: Callable[[str], None] | None, prefix: str = ""):
    """A Trainer from ``cfg.trainer`` / ``cfg.optim`` with the run's callbacks, atomic checkpoints, no logger
    (metrics.csv is written by :class:`RunState`) and a progress display."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    t = cfg.trainer
    prog, use_rich = progress_callbacks(t.progress, log, prefix)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    # Lightning notices that are expected here (small label subsets have fewer batches than the logging
    # interval; the run folder exists; checkpoints are loaded with weights_only=True by design; fully frozen
    # modules are kept in eval mode)
    for pattern in (".*smaller than the logging interval.*", ".*Checkpoint directory .* exists and is not empty.*",
                    ".*LeafSpec.*is deprecated.*", ".*does not have many workers.*", ".*You defined a `validation_step`.*",
                    ".*`training_step` returned `None`.*", ".*that ended before the epoch ended.*",
                    ".*module\\(s\\) in eval mode at the start of training.*"):  # frozen modules, on purpose
        warnings.filterwarnings("ignore", message=pattern)
    o = cfg.optim
    return L.Trainer(
        default_root_dir=out, max_epochs=o.epochs if o.max_steps is None else -1,
        max_steps=o.max_steps if o.max_steps is not None else -1,
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=t.precision,
        deterministic=t.deterministic, check_val_every_n_epoch=t.check_val_every_n_epoch,
        log_every_n_steps=t.log_every_n_steps, logger=False, callbacks=[*callbacks, *prog],
        plugins=[AtomicCheckpointIO()], enable_progress_bar=use_rich, enable_model_summary=False,
        num_sanity_val_steps=0, use_distributed_sampler=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
    )


__all__ = ["make_trainer", "best_checkpoint", "progress_callbacks", "RunState", "PROGRESS"]
