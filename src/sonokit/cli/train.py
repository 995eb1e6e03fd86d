"""`sonokit train segment`: config -> data -> Lightning task -> checkpoints, metrics.csv, config.yaml."""
from __future__ import annotations

import json
import logging
from contextlib import contextmanager
import sys
import time
import warnings
from pathlib import Path

import typer
import yaml
from rich.console import Console

from ..errors import ConfigError
from .config import SegmentConfig, load_config, to_dict
from .options import config_option, out_option, resume_option, seed_option, set_option

console = Console(stderr=True)
app = typer.Typer(help="Train models. One subcommand per task.", no_args_is_help=True)


def _epoch_line_callback():
    import lightning as L

    class EpochLine(L.Callback):
        """One plain line per epoch (for logs and CI where a live progress bar is noise)."""

        def on_train_epoch_start(self, trainer, pl_module):
            self._t = time.time()

        def on_train_epoch_end(self, trainer, pl_module):  # after the epoch's validation, if any
            m = {k: float(v) for k, v in trainer.callback_metrics.items()
                 if (k.startswith("train_") and k.endswith("_epoch")) or k in ("val_loss", "val_dice", "val_psnr", "val_ssim")}
            console.print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} " +
                          " ".join(f"{k}={v:.4f}" for k, v in m.items()) +
                          f" ({time.time() - getattr(self, '_t', time.time()):.0f}s)")

    return EpochLine()


def make_trainer(cfg, out: Path, callbacks: list, *, quiet: bool = False):
    """A Lightning Trainer from ``cfg.trainer`` / ``cfg.optim``: atomic checkpoints, CSV metrics in ``out``,
    a rich progress bar on a terminal (one line per epoch otherwise)."""
    import lightning as L
    from lightning.pytorch.callbacks import RichProgressBar
    from lightning.pytorch.loggers import CSVLogger

    from ..tasks import AtomicCheckpointIO

    mode = cfg.trainer.progress
    if mode not in ("auto", "rich", "none"):
        raise ConfigError(f"trainer.progress must be auto, rich or none; found '{mode}'")
    use_rich = mode == "rich" or (mode == "auto" and sys.stderr.isatty() and not quiet)
    callbacks = list(callbacks)
    if use_rich:
        callbacks.append(RichProgressBar())
    elif not quiet and mode != "none":
        callbacks.append(_epoch_line_callback())
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    # Lightning notices that are expected here (sonokit writes config.yaml into the run folder before the CSV
    # logger starts; small label subsets have fewer batches than the logging interval)
    for pattern in (".*Experiment logs directory.*", ".*smaller than the logging interval.*",
                    ".*Checkpoint directory .* exists and is not empty.*", ".*LeafSpec.*is deprecated.*"):
        warnings.filterwarnings("ignore", message=pattern)
    return L.Trainer(
        default_root_dir=out, max_epochs=cfg.optim.epochs if cfg.optim.max_steps is None else -1,
        max_steps=cfg.optim.max_steps if cfg.optim.max_steps is not None else -1,
        accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices, strategy=cfg.trainer.strategy,
        precision=cfg.trainer.precision, deterministic=cfg.trainer.deterministic,
        check_val_every_n_epoch=cfg.trainer.check_val_every_n_epoch, log_every_n_steps=cfg.trainer.log_every_n_steps,
        logger=CSVLogger(save_dir=str(out), name="", version=""), callbacks=callbacks,
        plugins=[AtomicCheckpointIO()], enable_progress_bar=use_rich, enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def _read_history(out: Path, last: Path) -> list[dict]:
    """Rows of ``out/metrics.csv`` logged before the checkpoint ``last`` was written (Lightning's CSVLogger
    deletes the file when a run is resumed; :func:`_merge_history` writes them back in front of the new rows)."""
    import csv

    import torch

    f = out / "metrics.csv"
    if not f.is_file():
        return []
    # rows logged at steps the checkpoint had completed; later rows came from work the resume repeats
    done = int(torch.load(last, map_location="cpu", weights_only=False).get("global_step", 0))
    with open(f, newline="") as fh:
        return [r for r in csv.DictReader(fh) if r.get("step", "") != "" and int(float(r["step"])) < done]


def _merge_history(out: Path, old: list[dict]) -> None:
    import csv

    f = out / "metrics.csv"
    if not old:
        return
    new = []
    if f.is_file():
        with open(f, newline="") as fh:
            new = list(csv.DictReader(fh))
    keys = sorted({k for r in old + new for k in r})
    with open(f, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(old + new)


@contextmanager
def kept_metrics(out: Path, last: Path | None):
    """Keep ``metrics.csv`` across a resume: Lightning's CSVLogger deletes the file when it reuses a run folder,
    so the rows up to the resumed checkpoint's epoch are read first and written back in front of the new ones."""
    old = _read_history(out, last) if last is not None else []
    try:
        yield
    finally:
        _merge_history(out, old)


def checkpoints(out: Path, monitor: str | None, *, maximize: bool = False):
    """Lightning checkpointing of a run: ``checkpoints/last.ckpt`` always and, with a ``monitor``, the best
    epoch as ``checkpoints/best.ckpt`` (Lightning writes both through a temporary file and a rename)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    kw = {"filename": "best", "monitor": monitor, "mode": "max" if maximize else "min", "save_top_k": 1} if monitor \
        else {"save_top_k": 0}
    return ModelCheckpoint(dirpath=out / "checkpoints", save_last=True, enable_version_counter=False, **kw)


def fit(cfg, out: Path, task, train_dl, val_dl, callbacks: list, *, last: Path, resume: bool, quiet: bool):
    """Build the trainer from ``cfg.trainer`` and fit ``task``, from ``last`` when ``resume`` (the metrics.csv
    rows up to that checkpoint are kept). Returns ``(trainer, seconds)``. Shared by every train command."""
    trainer = make_trainer(cfg, out, callbacks, quiet=quiet)
    t0 = time.time()
    with kept_metrics(out, last if resume else None):
        trainer.fit(task, train_dl, val_dl, ckpt_path=str(last) if resume else None)
    return trainer, time.time() - t0


def cli_overrides(set_: list[str], out: Path | None, seed: int | None) -> list[str]:
    """The ``--set`` overrides plus ``--out`` and ``--seed`` as config overrides (shared by the train commands)."""
    return [*set_, *([f"out_dir={out}"] if out is not None else []), *([f"seed={seed}"] if seed is not None else [])]


def prepare_run_dir(out: Path, resume: bool) -> Path:
    """Refuse to overwrite a run; with ``resume`` require its last checkpoint. Returns last.ckpt's path."""
    last = out / "checkpoints" / "last.ckpt"
    if resume and not last.exists():
        raise ConfigError(f"--resume: no checkpoint to resume from at '{last}'")
    if not resume and last.exists():
        raise ConfigError(f"run folder '{out}' already holds a checkpoint; pass --resume to continue it, "
                          "or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return last


def load_or_make_split(reader, split_path: str | None, out_dir: Path, *, seed: int, fractions=(1.0,)) -> dict:
    """The split file ``split_path`` (checked against the dataset), or, without one, a random 70/10/20 split
    saved to ``out_dir/split.json`` with a warning that it ignores duplicates."""
    from ..data.splits import load_split, make_split, save_split, verify_split

    if split_path:
        split = load_split(split_path)
        verify_split(split, reader.ids, split_path)
        return split
    console.print("[yellow]no data.split given: making a random 70/10/20 split WITHOUT duplicate detection "
                  f"(saved to {out_dir / 'split.json'}); use `sonokit data split` for a de-duplicated one[/]")
    split = make_split(reader.ids, labels={r.id: r.label for r in reader.records},
                       groups={r.id: r.group for r in reader.records}, seeds=(seed,),
                       fractions=tuple(sorted(set(fractions))), dataset=reader.name)
    save_split(split, out_dir / "split.json")
    return split


def build_datasets(cfg: SegmentConfig, out_dir: Path):
    from ..data import open_dataset
    from ..data.loader import SegmentationDataset
    from ..data.splits import select_ids

    d = cfg.data
    if d.root is None:
        raise ConfigError("data.root is not set; give the dataset folder in the config or with --set data.root=PATH")
    if d.image_size < 32:
        raise ConfigError(f"data.image_size must be >= 32, found {d.image_size}")
    if not 0 < d.fraction <= 1:
        raise ConfigError(f"data.fraction must be in (0, 1], found {d.fraction}")
    reader = open_dataset(d.root, d.format)
    split = load_or_make_split(reader, d.split, out_dir, seed=cfg.seed, fractions=(d.fraction, 1.0))
    labels = {r.id: r.label for r in reader.records}
    train_ids = select_ids(split, "train", seed=cfg.seed, fraction=d.fraction)
    val_ids = select_ids(split, "val")
    if d.classes:
        known = {str(v) for v in labels.values()}
        unknown = [c for c in d.classes if c not in known]
        if unknown:
            raise ConfigError(f"data.classes names {unknown}, which the dataset does not have; it has {sorted(known)}")
        train_ids = [i for i in train_ids if labels[i] in d.classes]
        val_ids = [i for i in val_ids if labels[i] in d.classes]
    kw = dict(image_size=d.image_size, cache=d.cache, fail_fast=d.fail_fast)
    return reader, SegmentationDataset(reader, train_ids, **kw), SegmentationDataset(reader, val_ids, **kw)


def run_segmentation(cfg: SegmentConfig, *, resume: bool = False, quiet: bool = False) -> Path:
    """Train a segmentation model as configured; returns the run folder."""
    import lightning as L
    import torch

    from ..models import MODELS
    from ..tasks import SegmentationTask

    MODELS.get(cfg.model.name)  # unknown model names fail before any data is read
    out = Path(cfg.out_dir)
    last = prepare_run_dir(out, resume)
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    reader, train_ds, val_ds = build_datasets(cfg, out)
    (out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    (out / "data.json").write_text(json.dumps({
        "dataset": reader.name, "root": str(reader.root), "train": len(train_ds), "val": len(val_ds),
        "skipped": train_ds.skipped + val_ds.skipped}, indent=1))
    if not quiet:
        console.print(f"[bold]{cfg.name}[/]: {reader.name} at {reader.root} — train {len(train_ds)}, "
                      f"val {len(val_ds)} images at {cfg.data.image_size}px; model {cfg.model.name}; run folder {out}")
        for sid, err in (train_ds.skipped + val_ds.skipped)[:10]:
            console.print(f"[yellow]skipped[/] {sid}: {err}")
    bs = cfg.data.batch_size
    g = torch.Generator().manual_seed(cfg.seed)
    train_dl = torch.utils.data.DataLoader(train_ds, batch_size=bs, shuffle=True, generator=g,
                                           num_workers=cfg.data.num_workers, drop_last=len(train_ds) > bs,
                                           persistent_workers=cfg.data.num_workers > 0)
    val_dl = torch.utils.data.DataLoader(val_ds, batch_size=bs, shuffle=False, num_workers=cfg.data.num_workers)
    aug = None
    if cfg.augment.enabled:
        aug = {k: (tuple(v) if isinstance(v, list) else v) for k, v in to_dict(cfg.augment).items() if k != "enabled"}
    mkw = {"in_chans": cfg.model.in_chans, "decoder_channels": tuple(cfg.model.decoder_channels)}
    if cfg.model.encoder_weights:
        mkw["encoder_weights"] = cfg.model.encoder_weights
    if cfg.model.encoder_checkpoint:
        mkw["encoder_checkpoint"] = cfg.model.encoder_checkpoint
    task = SegmentationTask(
        model=cfg.model.name, model_kwargs=mkw, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
        warmup_epochs=cfg.optim.warmup_epochs, dice_weight=cfg.loss.dice_weight, bce_weight=cfg.loss.bce_weight,
        augment=aug, seed=cfg.seed, image_size=cfg.data.image_size,
        data={"root": str(reader.root.resolve()), "format": reader.name,
              "split": str(Path(cfg.data.split or out / "split.json").resolve()),
              "classes": cfg.data.classes, "fraction": cfg.data.fraction, "seed": cfg.seed},
    )
    mon = cfg.checkpoint_monitor
    _, seconds = fit(cfg, out, task, train_dl, val_dl, [checkpoints(out, mon, maximize="dice" in mon)], last=last,
                     resume=resume, quiet=quiet)
    if not quiet:
        console.print(f"trained in {seconds:.0f}s; checkpoints in {out / 'checkpoints'}")
    return out


@app.command("segment")
def segment_cmd(
    config: Path = config_option("configs/busi_resunet18_cpu.yaml"),
    out: Path = out_option(),
    set_: list[str] = set_option("optim.lr=3e-4"),
    seed: int = seed_option(),
    resume: bool = resume_option(),
    encoder_checkpoint: Path = typer.Option(
        None, "--encoder-checkpoint", exists=True, dir_okay=False, resolve_path=True,
        help="start the encoder from this file: the encoder.safetensors written by `sonokit pretrain` "
             "(same as --set model.encoder_checkpoint=PATH)"),
) -> None:
    """Train a segmentation model (Res-UNet by default) on any supported dataset.

    Example: sonokit train segment --config configs/busi_resunet18_cpu.yaml --seed 1 --out runs/busi_s1
    With an SSL-pretrained encoder: ... --encoder-checkpoint runs/ssl/encoder.safetensors
    """
    overrides = cli_overrides(set_, out, seed)
    if encoder_checkpoint is not None:
        overrides.append(f"model.encoder_checkpoint={encoder_checkpoint}")
    cfg = load_config(config, overrides)
    run_segmentation(cfg, resume=resume)
