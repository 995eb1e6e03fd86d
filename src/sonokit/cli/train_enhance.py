"""`sonokit train enhance`: config -> targets (NLLR or original) -> on-the-fly degraded pairs -> enhancer.

Writes the run folder like segmentation: ``config.yaml``, ``data.json``, ``metrics.csv`` (``val_psnr``,
``val_ssim``, ``val_psnr_input``, ``train_loss``), ``checkpoints/best.ckpt`` (highest ``val_psnr``) and
``checkpoints/last.ckpt`` (``--resume`` continues from it), and ``targets/`` (the NLLR target cache, reused
on resume; ``target.cache_dir`` puts it elsewhere, e.g. to share it between seeds).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from ..errors import ConfigError
from .config import EnhanceConfig, load_config, to_dict
from .options import config_option, out_option, resume_option, seed_option, set_option
from .train import checkpoints, cli_overrides, console, fit, load_or_make_split, prepare_run_dir


def degrade_dict(cfg: EnhanceConfig) -> dict:
    """The ``degrade`` hyper-parameter of :class:`sonokit.tasks.EnhanceTask` from the config section."""
    d, n = cfg.degrade, cfg.degrade.noise
    noises = {}
    for name in n.models:
        if name == "gaussian":
            noises["gaussian"] = {"sigma": list(n.gaussian_sigma)}
        elif name == "fourier":
            noises["fourier"] = {"phase_std": list(n.fourier_phase_std), "magnitude_std": list(n.fourier_magnitude_std)}
        elif name == "speckle":
            noises["speckle"] = {"kinds": list(n.speckle_kinds), "nakagami_m": list(n.speckle_m),
                                 "dynamic_range_db": n.speckle_dynamic_range_db}
        else:
            raise ConfigError(f"degrade.noise.models: unknown noise model '{name}'; expected gaussian, fourier, speckle")
    blur = ({"axial_sigma": list(d.blur.axial_sigma), "lateral_sigma": list(d.blur.lateral_sigma),
             "depth_factor": list(d.blur.depth_factor)} if d.blur.enabled else None)
    return {"blur": blur, "noises": noises, "rotation": d.rotation}


def _split_ids(cfg: EnhanceConfig, reader, out: Path) -> tuple[list[str], list[str]]:
    from ..data.splits import select_ids

    d = cfg.data
    split = load_or_make_split(reader, d.split, out, seed=cfg.seed)
    train_ids, val_ids = select_ids(split, "train"), select_ids(split, "val")
    if d.classes:
        labels = {r.id: r.label for r in reader.records}
        known = {str(v) for v in labels.values()}
        unknown = [c for c in d.classes if c not in known]
        if unknown:
            raise ConfigError(f"data.classes names {unknown}, which the dataset does not have; it has {sorted(known)}")
        train_ids = [i for i in train_ids if labels[i] in d.classes]
        val_ids = [i for i in val_ids if labels[i] in d.classes]
    return _subset(train_ids, d.max_frames, cfg.seed), _subset(val_ids, d.max_val_frames, cfg.seed)


def _subset(ids: list[str], n: int | None, seed: int) -> list[str]:
    """At most ``n`` of ``ids``: a seeded random subset, in the original order."""
    if n is None or len(ids) <= n:
        return ids
    import numpy as np

    keep = np.random.default_rng(seed).choice(len(ids), n, replace=False)
    return [ids[i] for i in sorted(keep)]


def _check(cfg: EnhanceConfig) -> None:
    d, t = cfg.data, cfg.target
    if t.kind not in ("nllr", "original"):
        raise ConfigError(f"target.kind must be nllr or original; found '{t.kind}'")
    if cfg.loss not in ("l1", "mse", "charbonnier"):
        raise ConfigError(f"loss must be l1, mse or charbonnier; found '{cfg.loss}'")
    for name, v, lo in (("data.patch_size", d.patch_size, 8), ("data.batch_size", d.batch_size, 1),
                        ("data.patches_per_epoch", d.patches_per_epoch, 1), ("data.max_frames", d.max_frames, 1),
                        ("data.max_val_frames", d.max_val_frames, 1), ("target.patch", t.patch, 2),
                        ("target.stride", t.stride, 1), ("target.search", t.search, 0), ("target.k", t.k, 1),
                        ("target.iterations", t.iterations, 1), ("target.wiener", t.wiener, 0)):
        if v is not None and v < lo:
            raise ConfigError(f"{name} must be >= {lo}, found {v}")
    if d.val_patch_size is not None and d.val_patch_size < 8:
        raise ConfigError(f"data.val_patch_size must be >= 8 or null, found {d.val_patch_size}")
    if t.sigma is not None and not t.sigma >= 0:
        raise ConfigError(f"target.sigma must be >= 0 or null (estimate), found {t.sigma}")
    if d.root is None:
        raise ConfigError("data.root is not set; give the dataset folder in the config or with --set data.root=PATH")


def run_enhance(cfg: EnhanceConfig, *, resume: bool = False, quiet: bool = False) -> Path:
    """Train an enhancement model as configured; returns the run folder."""
    import lightning as L
    import torch

    from ..data import open_dataset
    from ..data.pairs import CentreCropDataset, EnhanceTargets, TargetCropDataset
    from ..enhance.models import ENHANCERS
    from ..tasks import EnhanceTask

    ENHANCERS.get(cfg.model.name)  # unknown model names fail ("did you mean") before any data is read
    _check(cfg)
    degrade = degrade_dict(cfg)
    mkw = {"weights": cfg.model.weights} if cfg.model.weights else {}
    d = cfg.data
    try:
        task = EnhanceTask(
            model=cfg.model.name, model_kwargs=mkw, loss=cfg.loss, lr=cfg.optim.lr,
            weight_decay=cfg.optim.weight_decay, warmup_epochs=cfg.optim.warmup_epochs, patch_size=d.patch_size,
            val_patch_size=d.val_patch_size, degrade=degrade, seed=cfg.seed,
            image={"range": [0.0, 1.0], "channels": 1, "target": cfg.target.kind, "max_side": d.max_side},
            data={"root": None if d.root is None else str(Path(d.root).resolve()), "format": d.format,
                  "split": d.split, "classes": d.classes, "seed": cfg.seed})
    except ValueError as e:  # bad degradation ranges, loss, patch size
        raise ConfigError(f"{cfg.name}: {e}") from None
    out = Path(cfg.out_dir)
    last = prepare_run_dir(out, resume)
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    reader = open_dataset(d.root, d.format)
    train_ids, val_ids = _split_ids(cfg, reader, out)
    t = cfg.target
    nllr = {"sigma": t.sigma, "patch": t.patch, "stride": t.stride, "search": t.search, "k": t.k,
            "iterations": t.iterations, **({"wiener": t.wiener} if t.wiener else {})}  # no key: caches stay valid
    cache_dir = Path(t.cache_dir) if t.cache_dir else out / "targets"
    tkw = dict(target=t.kind, nllr=nllr, max_side=d.max_side, cache_dir=cache_dir, fail_fast=d.fail_fast,
               device=t.device)
    if not quiet:
        console.print(f"[bold]{cfg.name}[/]: {reader.name} at {reader.root} — {len(train_ids)} train and "
                      f"{len(val_ids)} val frames; target {t.kind}; model {cfg.model.name}; run folder {out}")
    t0 = time.time()
    tick = max(1, len(train_ids) // 10)
    prog = (lambda i, n: console.print(f"targets {i}/{n} ({time.time() - t0:.0f}s)") if (i % tick == 0 and i) else None)
    train_t = EnhanceTargets(reader, train_ids, min_side=task.crop_size(), progress=None if quiet else prog, **tkw)
    val_t = EnhanceTargets(reader, val_ids, min_side=task.crop_size(val=True), **tkw)
    train_ds = TargetCropDataset(train_t, crop=task.crop_size(), patches_per_epoch=d.patches_per_epoch, seed=cfg.seed)
    val_ds = CentreCropDataset(val_t, crop=task.crop_size(val=True))
    (out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    (out / "data.json").write_text(json.dumps({
        "dataset": reader.name, "root": str(reader.root), "train": len(train_t), "val": len(val_t),
        "target": t.kind, "target_cache": str(train_t.cache_path) if train_t.cache_path else None,
        "targets_computed": train_t.computed + val_t.computed, "targets_loaded": train_t.loaded + val_t.loaded,
        "target_seconds": round(train_t.seconds + val_t.seconds, 2), "crop": task.crop_size(),
        "skipped": train_t.skipped + val_t.skipped}, indent=1))
    if not quiet:
        console.print(f"targets ready in {time.time() - t0:.0f}s ({train_t.computed + val_t.computed} computed, "
                      f"{train_t.loaded + val_t.loaded} from cache); {len(train_ds)} patches of {d.patch_size}px "
                      f"per epoch from {len(train_t)} frames, {len(val_ds)} val crops")
        for sid, err in (train_t.skipped + val_t.skipped)[:10]:
            console.print(f"[yellow]skipped[/] {sid}: {err}")
    bs = d.batch_size
    # no shuffling: TargetCropDataset draws frame order and crop positions from (seed, epoch, index)
    train_dl = torch.utils.data.DataLoader(train_ds, batch_size=bs, shuffle=False, num_workers=d.num_workers,
                                           drop_last=len(train_ds) > bs, persistent_workers=False)
    val_dl = torch.utils.data.DataLoader(val_ds, batch_size=bs, shuffle=False, num_workers=d.num_workers)
    mon = cfg.checkpoint_monitor
    trainer, seconds = fit(cfg, out, task, train_dl, val_dl, [checkpoints(out, mon, maximize="psnr" in mon or "ssim" in mon)],
                           last=last, resume=resume, quiet=quiet)
    if not quiet:
        m = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        console.print(f"trained in {seconds:.0f}s; " + " ".join(f"{k}={v:.3f}" for k, v in sorted(m.items())) +
                      f"; checkpoints in {out / 'checkpoints'}")
    return out


def enhance_train_cmd(
    config: Path = config_option("configs/enhance_busi_cpu.yaml"),
    out: Path = out_option(),
    set_: list[str] = set_option("data.patch_size=128"),
    seed: int = seed_option(),
    resume: bool = resume_option(),
) -> None:
    """Train a blind enhancement model (SCUNet, DnCNN, Restormer) on physics-guided degradations
    (PSF blur + Gaussian / Fourier / speckle noise) of NLLR-denoised (or original) frames.

    Example: sonokit train enhance --config configs/enhance_busi_cpu.yaml --out runs/enh_busi
    """
    run_enhance(load_config(config, cli_overrides(set_, out, seed), cls=EnhanceConfig), resume=resume)
