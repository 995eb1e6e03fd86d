"""The run's Lightning callbacks: checkpoints that always resume, metrics history, progress lines.

:class:`RunState` writes ``checkpoints/last.ckpt`` (atomically, through :class:`AtomicCheckpointIO`):

* at the end of every epoch, after its validation;
* every ``every_n_steps`` optimizer steps when set (long epochs), as a mid-epoch checkpoint that resumes
  at the next batch (:class:`sonokit.runs.loaders.ResumableLoader`);
* when SIGINT or SIGTERM arrives: at the end of the batch being trained, then the run stops with
  :class:`RunInterrupted` (a second Ctrl-C interrupts at once).

It keeps one metrics row per finished epoch and stores the rows in every checkpoint, so ``metrics.csv``
(rewritten atomically from them each epoch) never loses the rows of epochs before a crash, however often a
run is killed and resumed. It also saves the torch / NumPy / Python random states and restores them on
resume (dropout and stochastic depth draw from them).
"""
from __future__ import annotations

import csv
import io
import math
import random
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..data.io import atomic_write
from ..errors import SonokitError


class RunInterrupted(SonokitError):
    """Training stopped on SIGINT/SIGTERM after writing a resumable checkpoint."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO plugin: every checkpoint goes to a temporary file beside the target, then is
    renamed over it, so a crash or a full disk while saving leaves the previous checkpoint intact."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def _scalar(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


class RunState(L.Callback):
    """See the module docstring. ``last`` is the path of last.ckpt, ``metrics`` that of metrics.csv."""

    def __init__(self, last: Path, metrics: Path, *, every_n_steps: int | None = None) -> None:
        self.last, self.metrics, self.every_n_steps = Path(last), Path(metrics), every_n_steps
        self.history: list[dict] = []
        self.epochs_done = 0
        self.interrupt: int | None = None
        self._rng: dict | None = None
        self._loader_state: dict | None = None
        self._t0 = time.time()
        self._previous: dict = {}

    @property
    def state_key(self) -> str:
        return "sonokit_run_state"

    # -- persisted state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        npst = np.random.get_state()
        pyst = random.getstate()
        loader = getattr(self, "_trainer_loader", None)
        return {"history": self.history, "epochs_done": self.epochs_done,
                "loader": loader.state_dict() if loader is not None else None, "rng": {
            "torch": torch.get_rng_state(), "numpy": [npst[0], npst[1].tolist(), int(npst[2]), int(npst[3]),
                                                      float(npst[4])],
            "python": [pyst[0], list(pyst[1]), pyst[2]]}}

    def load_state_dict(self, state: dict) -> None:
        self.history = list(state.get("history") or [])
        self.epochs_done = int(state.get("epochs_done", len(self.history)))
        self._rng = state.get("rng")
        self._loader_state = state.get("loader")

    # -- signals --------------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        def handler(signum, frame):
            if self.interrupt is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop at once
            self.interrupt = signum

        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)

    def restore_signal_handlers(self) -> None:
        for sig, h in self._previous.items():
            signal.signal(sig, h)
        self._previous = {}

    # -- hooks ----------------------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        if self._rng:  # continue the random streams where the checkpoint left them
            torch.set_rng_state(self._rng["torch"])
            kind, keys, pos, has_gauss, gauss = self._rng["numpy"]
            np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
            version, internal, gauss_next = self._rng["python"]
            random.setstate((version, tuple(internal), gauss_next))
            self._rng = None
        loader = self._trainer_loader = self._loader(trainer)
        if loader is not None and self._loader_state:
            # Lightning sets the loader up before it restores the loops when configure_optimizers asks for
            # estimated_stepping_batches, so it never hands the loader its saved state: do it here, before the
            # first batch is drawn (the sampler is lazy), so a mid-epoch resume continues at the next batch
            loader.load_state_dict(self._loader_state)
            self._loader_state = None
        self.write_metrics()  # rows of a resumed run: exactly those its checkpoint had
        self._t0 = time.time()

    def _loader(self, trainer):
        dl = trainer.train_dataloader
        return dl if hasattr(dl, "completed") else None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_t0 = time.time()
        loader = self._loader(trainer)
        if loader is not None and trainer.fit_loop.epoch_loop.batch_progress.current.completed == 0:
            loader.completed = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loader = self._loader(trainer)
        if loader is not None:
            loader.completed = batch_idx + 1
        if self.interrupt is not None:
            self.save(trainer)
            raise RunInterrupted(f"training stopped by signal {signal.Signals(self.interrupt).name} at epoch "
                                 f"{trainer.current_epoch + 1}, step {trainer.global_step}; {self.last} holds that "
                                 "point: continue with --resume")
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0 and trainer.global_step > 0:
            self.save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step,
               "seconds": round(time.time() - getattr(self, "_epoch_t0", time.time()), 2)}
        for k, v in sorted(trainer.callback_metrics.items()):
            if k.endswith("_step"):
                continue
            row[k.removesuffix("_epoch")] = _scalar(v)
        opt = trainer.optimizers[0] if trainer.optimizers else None
        if opt is not None:
            row["lr"] = float(opt.param_groups[-1]["lr"])
        self.history.append(row)
        self.epochs_done += 1
        loader = self._loader(trainer)
        if loader is not None:
            loader.completed = 0
        self.write_metrics()
        self.save(trainer)
        if self.interrupt is not None:
            raise RunInterrupted(f"training stopped by signal {signal.Signals(self.interrupt).name} after epoch "
                                 f"{trainer.current_epoch + 1}; {self.last} holds it: continue with --resume")

    # -- io -------------------------------------------------------------------------------------------
    def save(self, trainer) -> None:
        trainer.save_checkpoint(self.last)

    def write_metrics(self) -> None:
        if not self.history:
            return
        keys = list(dict.fromkeys(k for r in self.history for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        w.writerows(self.history)
        atomic_write(self.metrics, lambda tmp: Path(tmp).write_text(buf.getvalue()))


class EpochLine(L.Callback):
    """One plain line per epoch (logs, CI, and the sub-runs of an experiment), optionally prefixed."""

    def __init__(self, log, *, prefix: str = "") -> None:
        self.emit, self.prefix = log, prefix

    def on_train_epoch_start(self, trainer, pl_module):
        self._t = time.time()

    def on_train_epoch_end(self, trainer, pl_module):
        m = {k.removesuffix("_epoch"): float(v) for k, v in trainer.callback_metrics.items()
             if (k.startswith("train_") and k.endswith("_epoch")) or k.startswith("val_")}
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        self.emit(f"{self.prefix}epoch {trainer.current_epoch + 1}/{total} "
                 + " ".join(f"{k}={v:.4f}" for k, v in sorted(m.items()))
                 + f" ({time.time() - getattr(self, '_t', time.time()):.0f}s)")
