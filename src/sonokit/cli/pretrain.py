"""`sonokit pretrain`: self-supervised encoder pretraining on unlabeled images from any reader.

Writes into the run folder: ``checkpoints/last.ckpt`` (resumable), ``metrics.csv``, ``config.yaml``,
``data.json`` and ``encoder.safetensors`` — the encoder alone, which a Res-UNet loads with
``--set model.encoder_checkpoint=RUN/encoder.safetensors`` (the name of the encoder must match
``model.name``, e.g. ``resnet50`` -> ``resunet_resnet50``).
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..errors import ConfigError
from .config import PretrainConfig, load_config, to_dict
from .options import config_option, out_option, resume_option, seed_option, set_option
from .train import checkpoints, cli_overrides, console, fit, prepare_run_dir


def pretrain_ids(cfg: PretrainConfig, reader) -> list[str]:
    """Images used for pretraining: the TRAIN split of ``data.split`` (val and test images are never seen,
    labels ignored); without a split, every image of the dataset."""
    from ..data.splits import load_split, select_ids, verify_split

    d = cfg.data
    if d.split:
        split = load_split(d.split)
        verify_split(split, reader.ids, d.split)
        ids = select_ids(split, "train")
    else:
        console.print("[yellow]no data.split given: pretraining on EVERY image of the dataset; do not evaluate "
                      "on these images later (give data.split to pretrain on its train part only)[/]")
        ids = list(reader.ids)
    if d.classes:
        labels = {r.id: r.label for r in reader.records}
        ids = [i for i in ids if labels[i] in d.classes]
    return ids


def save_encoder(task, path: Path, meta: dict) -> Path:
    """Write the encoder's state dict as safetensors (atomically), with metadata."""
    from safetensors.torch import save_file

    from ..data.io import atomic_write

    sd = {k: v.detach().cpu().contiguous() for k, v in task.model.encoder.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(sd, tmp, metadata={k: str(v) for k, v in meta.items()}))


def run_pretrain(cfg: PretrainConfig, *, resume: bool = False, quiet: bool = False) -> Path:
    """Pretrain an encoder as configured; returns the run folder (holding ``encoder.safetensors``)."""
    import lightning as L
    import torch

    from ..data import open_dataset
    from ..data.loader import SegmentationDataset
    from ..models.encoders import ENCODERS
    from ..ssl import SSL_METHODS, PretextTransform
    from ..transforms.frequency import FrequencyBandStop
    from ..tasks import PretrainTask

    SSL_METHODS.get(cfg.method.name)  # unknown names fail before any data is read
    ENCODERS.get(cfg.encoder.name)
    m = cfg.method
    freq = {k: (tuple(v) if isinstance(v, list) else v) for k, v in to_dict(m.freq).items()}
    try:  # checked even when the pretext does not use it: a bad value in the config is an error
        FrequencyBandStop(**freq)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"method.freq: {e}") from None
    PretextTransform(m.pretext, grid=m.grid, freq=freq).check_size(cfg.data.image_size)
    if cfg.data.root is None:
        raise ConfigError("data.root is not set; give the dataset folder in the config or with --set data.root=PATH")
    out = Path(cfg.out_dir)
    last = prepare_run_dir(out, resume)
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    reader = open_dataset(cfg.data.root, cfg.data.format)
    ds = SegmentationDataset(reader, pretrain_ids(cfg, reader), image_size=cfg.data.image_size, cache=cfg.data.cache,
                             fail_fast=cfg.data.fail_fast, require_mask=False)
    if len(ds) < 2:
        raise ConfigError(f"pretraining needs at least 2 readable images; '{reader.root}' gave {len(ds)}")
    (out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    (out / "data.json").write_text(json.dumps({"dataset": reader.name, "root": str(reader.root), "train": len(ds),
                                               "skipped": ds.skipped}, indent=1))
    method_kwargs = {"encoder": cfg.encoder.name, "in_chans": cfg.encoder.in_chans, "n_data": len(ds),
                     "embed_dim": m.embed_dim, "temperature": m.temperature, "momentum": m.momentum,
                     "num_negatives": m.num_negatives, "lam": m.lam, "relation_hidden": m.relation_hidden,
                     "perceptual_level": m.perceptual_level, "seed": cfg.seed}
    if cfg.encoder.weights:
        method_kwargs["encoder_weights"] = cfg.encoder.weights
    for k in ("rcl_weight", "perceptual_weight"):
        if getattr(m, k) is not None:
            method_kwargs[k] = getattr(m, k)
    aug = None
    if cfg.augment.enabled:
        aug = {k: (tuple(v) if isinstance(v, list) else v) for k, v in to_dict(cfg.augment).items() if k != "enabled"}
    try:
        task = PretrainTask(method=m.name, method_kwargs=method_kwargs, pretext=m.pretext, grid=m.grid, freq=freq,
                            augment=aug, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                            warmup_epochs=cfg.optim.warmup_epochs, seed=cfg.seed, image_size=cfg.data.image_size,
                            data={"root": str(reader.root.resolve()), "format": reader.name, "split": cfg.data.split})
    except ValueError as e:  # option checks of the method, views and augmentation
        raise ConfigError(f"{cfg.name}: {e}") from None
    if not quiet:
        console.print(f"[bold]{cfg.name}[/]: {m.name} with pretext {m.pretext} on {len(ds)} unlabeled {reader.name} "
                      f"images at {cfg.data.image_size}px; encoder {cfg.encoder.name}; run folder {out}")
    bs = cfg.data.batch_size
    g = torch.Generator().manual_seed(cfg.seed)
    dl = torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, generator=g, num_workers=cfg.data.num_workers,
                                     drop_last=len(ds) > bs, persistent_workers=cfg.data.num_workers > 0)
    trainer, seconds = fit(cfg, out, task, dl, None, [checkpoints(out, None)], last=last, resume=resume, quiet=quiet)
    if trainer.global_rank == 0:
        save_encoder(task, out / "encoder.safetensors", {
            "format": "sonokit-encoder", "encoder": cfg.encoder.name, "in_chans": cfg.encoder.in_chans,
            "method": m.name, "pretext": m.pretext, "epochs": trainer.current_epoch, "images": len(ds)})
    if not quiet:
        console.print(f"pretrained in {seconds:.0f}s; encoder saved to {out / 'encoder.safetensors'} "
                      f"(fine-tune with --set model.encoder_checkpoint={out / 'encoder.safetensors'})")
    return out


def pretrain_cmd(
    config: Path = config_option("configs/ssl_busi_cpu.yaml"),
    out: Path = out_option(),
    set_: list[str] = set_option("method.name=rcl"),
    seed: int = seed_option(),
    resume: bool = resume_option(),
) -> None:
    """Pretrain an encoder without labels (PIRL, Relation Contrastive Loss, perceptual loss; jigsaw,
    cross-patch jigsaw and frequency band-stop views), then fine-tune it in a Res-UNet.

    Example: sonokit pretrain --config configs/ssl_busi_cpu.yaml --set method.name=rcl+perceptual
    --set method.pretext=freq+cross_jigsaw --out runs/rcl ; then sonokit train segment ...
    --set model.encoder_checkpoint=runs/rcl/encoder.safetensors
    """
    run_pretrain(load_config(config, cli_overrides(set_, out, seed), cls=PretrainConfig), resume=resume)
