"""Builder of pretraining runs (``sonokit pretrain``): unlabeled train images -> a registered SSL method.

The method (a :class:`sonokit.tasks.PretrainMethod`) owns its training step; the run gives it the encoder
spec, the data and the optimiser settings, and at the end writes ``encoder.safetensors`` — the encoder
alone, with its spec in the metadata — which a segmentation or classification model loads with
``model.encoder_checkpoint`` (``sonokit train segment --encoder-checkpoint``).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError
from ..registry import split_spec
from .skeleton import Prepared


def pretrain_ids(cfg, reader, out: Path, log) -> tuple[list[str], dict | None]:
    """Images used for pretraining: the TRAIN part of ``data.split`` (val and test images are never seen,
    labels ignored); without a split, every image of the dataset (with a warning)."""
    from ..data.splits import filter_classes, load_split, select_ids, verify_split

    d = cfg.data
    split = None
    if d.split:
        split = load_split(d.split)
        verify_split(split, reader.ids, d.split)
        ids = select_ids(split, "train")
    else:
        log("no data.split given: pretraining on EVERY image of the dataset; do not evaluate on these images "
            "later (give data.split to pretrain on its train part only)")
        ids = list(reader.ids)
    return filter_classes(ids, reader, d.classes, label_key=d.label_key), split


def save_encoder(encoder, path: Path, meta: dict) -> Path:
    """Write an encoder's state dict as safetensors (atomically), with string metadata."""
    from safetensors.torch import save_file

    from ..data.io import atomic_write

    sd = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(sd, tmp, metadata={k: str(v) for k, v in meta.items()}))


def check_method(cfg) -> tuple[str, dict]:
    from ..models.encoders import ENCODERS
    from ..ssl import SSL_METHODS
    from ..tasks.pretrain import RUN_ARGS

    mname, mkw = split_spec(cfg.method, "SSL method", "method")
    ename, ekw = split_spec(cfg.encoder, "encoder", "encoder")
    SSL_METHODS.get(mname)
    ENCODERS.check_kwargs(ename, ekw, "encoder.")
    clash = [k for k in mkw if k in RUN_ARGS]
    if clash:
        raise ConfigError(f"method.{clash[0]} is set by the run (the config's encoder, seed, data, augment and optim "
                          "sections), not in the method section")
    names, var = SSL_METHODS.parameters(mname)
    for k in mkw:
        if k not in names and not var:
            from ..registry import did_you_mean

            own = [n for n in names if n not in RUN_ARGS and n != "method"]
            raise ConfigError(f"unknown key 'method.{k}' for SSL method '{mname}'{did_you_mean(k, own)} "
                              f"its parameters: {', '.join(own)}")
    check = getattr(SSL_METHODS.get(mname), "check_options", None)
    if check is not None:  # the method's own checks that need no data, before any image is read
        check(image_size=cfg.data.image_size, **mkw)
    return mname, mkw


def build_pretrain(cfg, out: Path, log, *, trust: bool = False) -> Prepared:  # trust: no file read here
    from ..data.loader import ImageDataset
    from ..ssl import SSL_METHODS
    from .data import open_reader
    from .loaders import make_loaders

    mname, mkw = check_method(cfg)  # (also run before the run folder is made)
    d = cfg.data
    if (Path(d.root) / "shards.json").exists():
        return build_from_shards(cfg, mname, mkw, out, log)
    reader = open_reader(d.root, d.format)
    ids, split = pretrain_ids(cfg, reader, out, log)
    ds = ImageDataset(reader, ids, image_size=d.image_size, cache=d.cache, fail_fast=d.fail_fast, require_mask=False,
                      organs=d.organs)
    if len(ds) < 2:
        raise ConfigError(f"pretraining needs at least 2 readable images; '{reader.root}' gave {len(ds)}")
    data = {"root": str(reader.root.resolve()), "format": reader.name, "split": d.split,
            "split_hash": split["hash"] if split else None}
    try:
        task = SSL_METHODS.create(mname, **mkw, **method_args(cfg, mname, len(ds), data))
    except ValueError as e:  # option checks of the method, views and augmentation
        raise ConfigError(f"{cfg.name}: method: {e}") from None
    train_dl, _ = make_loaders(ds, None, batch_size=d.batch_size, seed=cfg.seed, num_workers=d.num_workers)

    def after_fit(trainer) -> None:
        enc = task.encoder_module()
        save_encoder(enc, out / "encoder.safetensors", {
            "format": "sonokit-encoder", "encoder": cfg.encoder["name"],
            "encoder_spec": json.dumps(getattr(enc, "spec", dict(cfg.encoder))), "method": mname,
            "pretext": mkw.get("pretext", ""), "method_spec": json.dumps(dict(cfg.method)),
            "epochs": trainer.current_epoch, "images": len(ds)})
        log(f"encoder saved to {out / 'encoder.safetensors'} (fine-tune with --encoder-checkpoint "
            f"{out / 'encoder.safetensors'})")

    record = {"dataset": reader.name, "root": str(reader.root), "train": len(ds), "skipped": ds.skipped,
              "split": d.split, "split_hash": split["hash"] if split else None}
    summary = (f"{cfg.name}: {mname} ({', '.join(f'{k}={v}' for k, v in mkw.items()) or 'defaults'}) on {len(ds)} "
               f"unlabeled {reader.name} images at {d.image_size}px; encoder {cfg.encoder['name']}; run folder {out}")
    return Prepared(task, train_dl, None, record, summary, monitor=None, after_fit=after_fit, skipped=ds.skipped)


def method_args(cfg, mname: str, n_data: int, data: dict) -> dict:
    """The keyword arguments the run gives every pretraining method (:data:`sonokit.tasks.pretrain.RUN_ARGS`)."""
    from ..models.encoders import ENCODERS

    d, o = cfg.data, cfg.optim
    aug = None
    if cfg.augment.enabled:
        aug = {k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(cfg.augment).items() if k != "enabled"}
    encoder = dict(cfg.encoder)
    if "img_size" not in encoder and ENCODERS.accepts(encoder["name"], "img_size"):
        encoder["img_size"] = d.image_size
    if "n_organs" not in encoder and ENCODERS.accepts(encoder["name"], "n_organs"):  # A-ViT: the vocabulary's size
        from ..data.organs import organ_vocabulary

        encoder["n_organs"] = len(organ_vocabulary(d.organs))
    return dict(encoder=encoder, n_data=n_data, seed=cfg.seed, image_size=d.image_size, augment=aug, lr=o.lr,
                weight_decay=o.weight_decay, warmup_epochs=o.warmup_epochs, freeze=list(o.freeze),
                unfreeze=list(o.unfreeze), groups=[vars(g) for g in o.groups], data=data)


def build_from_shards(cfg, mname: str, mkw: dict, out: Path, log) -> Prepared:
    """Pretraining that streams a shard folder (``sonokit data shard``; ``data.root`` holds ``shards.json``):
    :class:`sonokit.data.shard_stream.ShardDataset` split by DDP rank and DataLoader worker, reshuffled every
    epoch (:meth:`PretrainMethod.on_train_epoch_start <sonokit.tasks.pretrain.PretrainMethod>` sets the epoch).
    Only methods that need no per-image index (``streams = True``: ``arl``) can stream; the split is the one
    the shards were written with (``data shard --split``). A resumed run restarts its interrupted epoch."""
    from torch.utils.data import DataLoader

    from ..data.shard_stream import ShardDataset
    from ..ssl import SSL_METHODS

    d = cfg.data
    factory = SSL_METHODS.get(mname)
    if not getattr(factory, "streams", False):
        raise ConfigError(f"data.root '{d.root}' is a shard folder, which method '{mname}' cannot stream (it needs "
                          "every image by index, e.g. for a memory bank); give it a dataset folder, or use 'arl'")
    if d.split:
        raise ConfigError(f"data.split is set, but '{d.root}' is a shard folder: choose the images when writing "
                          "the shards (`sonokit data shard --split NAME=SPLIT.json`) and drop data.split")
    ds = ShardDataset(d.root, image_size=d.image_size, seed=cfg.seed, organs=d.organs)
    n = len(ds)
    if n < 2:
        raise ConfigError(f"pretraining needs at least 2 images; '{d.root}' holds {n}")
    data = {"root": str(Path(d.root).resolve()), "format": "shards", "split": None, "split_hash": None}
    try:
        task = SSL_METHODS.create(mname, **mkw, **method_args(cfg, mname, n, data))
    except ValueError as e:
        raise ConfigError(f"{cfg.name}: method: {e}") from None
    loader = DataLoader(ds, batch_size=d.batch_size, num_workers=d.num_workers, drop_last=n > d.batch_size)

    def after_fit(trainer) -> None:
        enc = task.encoder_module()
        save_encoder(enc, out / "encoder.safetensors", {
            "format": "sonokit-encoder", "encoder": cfg.encoder["name"],
            "encoder_spec": json.dumps(getattr(enc, "spec", dict(cfg.encoder))), "method": mname,
            "method_spec": json.dumps(dict(cfg.method)), "epochs": trainer.current_epoch, "images": n})
        log(f"encoder saved to {out / 'encoder.safetensors'}")

    record = {"dataset": "shards", "root": str(d.root), "train": n, "skipped": [], "split": None, "split_hash": None,
              "shards": len(ds.paths)}
    summary = (f"{cfg.name}: {mname} streaming {n} images from {len(ds.paths)} shards in {d.root} at "
               f"{d.image_size}px; encoder {cfg.encoder['name']}; run folder {out}")
    return Prepared(task, loader, None, record, summary, monitor=None, after_fit=after_fit)


build_pretrain.check = check_method
