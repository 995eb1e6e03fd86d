"""Builder of enhancement runs (``sonokit train enhance``): config -> targets (NLLR or original) ->
on-the-fly degraded pairs -> enhancer.

The run folder is the skeleton's plus ``targets/`` (the NLLR target cache, reused on resume;
``target.cache_dir`` puts it elsewhere, e.g. to share it between seeds). metrics.csv holds ``val_psnr``,
``val_ssim``, ``val_psnr_input`` and ``train_loss`` per epoch; best.ckpt has the highest ``val_psnr``.
"""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import ConfigError
from ..registry import split_spec
from .skeleton import Prepared

NOISE_MODELS = ("gaussian", "fourier", "speckle")


def degrade_dict(cfg) -> dict:
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
            raise ConfigError(f"degrade.noise.models: unknown noise model '{name}'; expected {', '.join(NOISE_MODELS)}")
    blur = ({"axial_sigma": list(d.blur.axial_sigma), "lateral_sigma": list(d.blur.lateral_sigma),
             "depth_factor": list(d.blur.depth_factor)} if d.blur.enabled else None)
    return {"blur": blur, "noises": noises, "rotation": d.rotation}


def subset(ids: list[str], n: int | None, seed: int) -> list[str]:
    """At most ``n`` of ``ids``: a seeded random subset, in the original order."""
    if n is None or len(ids) <= n:
        return ids
    import numpy as np

    keep = np.random.default_rng(seed).choice(len(ids), n, replace=False)
    return [ids[i] for i in sorted(keep)]


def check_enhance(cfg) -> None:
    from ..enhance.models import ENHANCERS

    name, mkw = split_spec(cfg.model, "enhancement model", "model")
    ENHANCERS.check_kwargs(name, mkw, "model.")  # unknown names and keys fail before any data is read
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


def build_enhance(cfg, out: Path, log, *, trust: bool = False) -> Prepared:  # trust: no file read here
    from ..data.pairs import CentreCropDataset, EnhanceTargets, TargetCropDataset
    from ..data.splits import filter_classes, select_ids
    from ..tasks import EnhanceTask
    from .data import load_or_make_split, open_reader
    from .loaders import make_loaders

    name, mkw = split_spec(cfg.model, "enhancement model", "model")
    check_enhance(cfg)
    degrade = degrade_dict(cfg)
    d = cfg.data
    try:
        task = EnhanceTask(
            model=name, model_kwargs=mkw, loss=cfg.loss, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
            warmup_epochs=cfg.optim.warmup_epochs, patch_size=d.patch_size, val_patch_size=d.val_patch_size,
            degrade=degrade, seed=cfg.seed,
            image={"range": [0.0, 1.0], "channels": 1, "target": cfg.target.kind, "max_side": d.max_side},
            data={"root": str(Path(d.root).resolve()), "format": d.format, "split": d.split, "classes": d.classes,
                  "seed": cfg.seed})
    except ValueError as e:  # bad degradation ranges, loss, patch size
        raise ConfigError(f"{cfg.name}: {e}") from None
    reader = open_reader(d.root, d.format)
    split, split_path = load_or_make_split(reader, d.split, out, seed=cfg.seed, log=log)
    train_ids = filter_classes(select_ids(split, "train"), reader, d.classes)
    val_ids = filter_classes(select_ids(split, "val"), reader, d.classes)
    train_ids, val_ids = subset(train_ids, d.max_frames, cfg.seed), subset(val_ids, d.max_val_frames, cfg.seed)
    t = cfg.target
    nllr = {"sigma": t.sigma, "patch": t.patch, "stride": t.stride, "search": t.search, "k": t.k,
            "iterations": t.iterations, **({"wiener": t.wiener} if t.wiener else {})}  # no key: caches stay valid
    cache_dir = Path(t.cache_dir) if t.cache_dir else out / "targets"
    tkw = dict(target=t.kind, nllr=nllr, max_side=d.max_side, cache_dir=cache_dir, fail_fast=d.fail_fast,
               device=t.device)
    log(f"{cfg.name}: {len(train_ids)} train and {len(val_ids)} val frames of {reader.name}; target {t.kind}")
    t0 = time.time()
    tick = max(1, len(train_ids) // 10)

    def prog(i: int, n: int) -> None:
        if i % tick == 0 and i:
            log(f"targets {i}/{n} ({time.time() - t0:.0f}s)")

    train_t = EnhanceTargets(reader, train_ids, min_side=task.crop_size(), progress=prog, **tkw)
    val_t = EnhanceTargets(reader, val_ids, min_side=task.crop_size(val=True), **tkw)
    train_ds = TargetCropDataset(train_t, crop=task.crop_size(), patches_per_epoch=d.patches_per_epoch, seed=cfg.seed)
    val_ds = CentreCropDataset(val_t, crop=task.crop_size(val=True))
    log(f"targets ready in {time.time() - t0:.0f}s ({train_t.computed + val_t.computed} computed, "
        f"{train_t.loaded + val_t.loaded} from cache); {len(train_ds)} patches of {d.patch_size}px per epoch from "
        f"{len(train_t)} frames, {len(val_ds)} val crops")
    # no shuffling: TargetCropDataset draws frame order and crop positions from (seed, epoch, index)
    train_dl, val_dl = make_loaders(train_ds, val_ds, batch_size=d.batch_size, seed=cfg.seed,
                                    num_workers=d.num_workers, shuffle=False)
    skipped = train_t.skipped + val_t.skipped
    record = {"dataset": reader.name, "root": str(reader.root), "split": split_path, "split_hash": split["hash"],
              "train": len(train_t), "val": len(val_t), "target": t.kind,
              "target_cache": str(train_t.cache_path) if train_t.cache_path else None,
              "targets_computed": train_t.computed + val_t.computed, "targets_loaded": train_t.loaded + val_t.loaded,
              "target_seconds": round(train_t.seconds + val_t.seconds, 2), "crop": task.crop_size(), "skipped": skipped}
    summary = f"{cfg.name}: model {name}, run folder {out}"
    mon = cfg.checkpoint_monitor
    return Prepared(task, train_dl, val_dl, record, summary, monitor=mon, maximize="psnr" in mon or "ssim" in mon,
                    skipped=skipped)


build_enhance.check = check_enhance
