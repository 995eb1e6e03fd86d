"""Builders of supervised runs (``sonokit train segment`` / ``sonokit train classify``) for the skeleton."""
from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError, ConfigError
from ..registry import split_spec
from .skeleton import Prepared


# arguments a run gives a model factory when it accepts them and the config does not set them
def run_model_kwargs(name: str, kwargs: dict, provided: dict) -> dict:
    from ..models import MODELS

    out = dict(kwargs)
    for k, v in provided.items():
        if k not in out and k in MODELS.parameters(name)[0]:
            out[k] = v
    return out


def organ_count_kwargs(encoder: str | None, encoder_kwargs: dict | None, organs) -> dict | None:
    """``encoder_kwargs`` with ``n_organs`` = the run's organ vocabulary size, for an encoder that takes it
    (A-ViT) and a config that does not set it; unchanged otherwise."""
    from ..data.organs import organ_vocabulary
    from ..models.encoders import ENCODERS

    if not encoder or encoder not in ENCODERS or not ENCODERS.accepts(encoder, "n_organs"):
        return encoder_kwargs
    kw = dict(encoder_kwargs or {})
    kw.setdefault("n_organs", len(organ_vocabulary(organs)))
    return kw


def load_init_weights(model, path: str, *, strict: bool, log, trust: bool = False) -> dict:
    """Load a model's weights from ``path`` (a sonokit .ckpt, or a model .safetensors); returns what was
    missing / unexpected. Tensors of another shape are always an error. Read with
    :func:`sonokit.serialization.load_checkpoint` / ``load_weights`` (``trust``: see there)."""
    from ..serialization import detect_format, load_checkpoint, load_weights

    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"init.checkpoint '{p}' does not exist")
    if p.suffix.lower() == ".safetensors" or detect_format(p) == "safetensors":
        sd, _ = load_weights(p, trust=trust)
    else:
        ck = load_checkpoint(p, trust=trust)
        if "state_dict" not in ck:
            raise CheckpointError(f"init.checkpoint '{p}' holds no state_dict; expected a sonokit .ckpt")
        sd = {k[len("model."):]: v for k, v in ck["state_dict"].items() if k.startswith("model.")}
    own = model.state_dict()
    wrong = [k for k, v in sd.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise CheckpointError(f"init.checkpoint '{p}' does not fit the model: {len(wrong)} tensors have other "
                              f"shapes (e.g. {k}: {tuple(sd[k].shape)} in the file, {tuple(own[k].shape)} in the model)")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if strict and (missing or unexpected):
        raise CheckpointError(f"init.checkpoint '{p}' does not fit the model: {len(missing)} tensors missing "
                              f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}); "
                              "set init.strict: false to load the ones that fit")
    log(f"initialised {len(sd) - len(unexpected)} tensors from {p}"
        + (f"; {len(missing)} model tensors not in the file (e.g. {missing[0]})" if missing else "")
        + (f"; {len(unexpected)} file tensors not in the model" if unexpected else ""))
    return {"checkpoint": str(p), "loaded": len(sd) - len(unexpected), "missing": len(missing),
            "unexpected": len(unexpected)}


def check_supervised(cfg) -> None:
    """Checks that need no data: a misspelt model, key or loss fails before any file is read or written."""
    from ..models import MODELS
    from ..tasks.losses import check_loss_specs

    name, kw = split_spec(cfg.model, "model", "model")
    MODELS.check_kwargs(name, kw, "model.")
    check_loss_specs(cfg.loss)
    if cfg.data.image_size < 32:
        raise ConfigError(f"data.image_size must be >= 32, found {cfg.data.image_size}")


def organ_gaps(reader, ids, organs) -> int:
    """How many of ``ids`` name no organ of the vocabulary (their organ index is -1)."""
    from ..data.organs import organ_index, organ_vocabulary

    vocab = organ_vocabulary(organs)
    return sum(organ_index(reader.record(i).anatomy or reader.anatomy, vocab) < 0 for i in ids)


def build_supervised(cfg, out: Path, log, *, trust: bool = False) -> Prepared:
    """Data, task and loaders of a segmentation or classification run (``trust``: for ``init.checkpoint``)."""
    from ..data.loader import ImageDataset
    from ..data.pin import training_record
    from ..tasks import ClassificationTask, SegmentationTask
    from .data import class_vocabulary, open_reader, split_parts
    from .loaders import make_loaders

    segment = cfg.task == "segment"
    name, kw = split_spec(cfg.model, "model", "model")
    d = cfg.data
    reader = open_reader(d.root, d.format)
    split, split_path, train_ids, val_ids = split_parts(cfg, reader, out, log, label_key=d.label_key)
    classes = None if segment else class_vocabulary(reader, d.classes, d.label_key)
    dkw = dict(image_size=d.image_size, cache=d.cache, fail_fast=d.fail_fast, require_mask=segment,
               classes=classes, label_key=d.label_key, require_label=not segment, organs=d.organs)
    train_ds, val_ds = ImageDataset(reader, train_ids, **dkw), ImageDataset(reader, val_ids, **dkw)
    provided = {"img_size": d.image_size} | ({} if segment else {"num_classes": len(classes)})
    probe = bool(getattr(cfg, "linear_probe", False))
    if probe:  # normalised features for the probe (MAE / MoCo v3), unless set
        provided["probe_norm"] = True
    kw = run_model_kwargs(name, kw, provided)
    for enc_key, kw_key in (("encoder", "encoder_kwargs"), ("image_encoder", "image_encoder_kwargs")):
        if isinstance(kw.get(enc_key), str):  # the encoder's organ count follows data.organs (A-ViT)
            enc_kw = organ_count_kwargs(kw[enc_key], kw.get(kw_key), d.organs)
            if enc_kw is not None:
                kw[kw_key] = enc_kw
    freeze = list(cfg.optim.freeze) + (["encoder.*"] if probe else [])
    aug = None
    if cfg.augment.enabled:
        aug = {k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(cfg.augment).items() if k != "enabled"}
    data = {"root": str(reader.root.resolve()), "format": reader.name, "classes": classes or d.classes,
            "class_filter": d.classes, "label_key": d.label_key, "fraction": getattr(d, "fraction", 1.0),
            "seed": cfg.seed, "organs": d.organs,
            **training_record(split, split_path, train_ds.ids, val_ds.ids)}
    loss = [dict(s) for s in cfg.loss]
    if classes:  # class_weights: balanced -> from the training labels
        from ..tasks.losses import resolve_balanced

        loss = resolve_balanced(loss, train_ds.label_counts(len(classes)))
    task_cls = SegmentationTask if segment else ClassificationTask
    task = task_cls(model=name, model_kwargs=kw, loss=loss, lr=cfg.optim.lr,
                    weight_decay=cfg.optim.weight_decay, warmup_epochs=cfg.optim.warmup_epochs, freeze=freeze,
                    unfreeze=list(cfg.optim.unfreeze), groups=[vars(g) for g in cfg.optim.groups], augment=aug,
                    seed=cfg.seed, image_size=d.image_size, data=data)
    if "organ" in tuple(getattr(task.model, "batch_inputs", ())):
        unknown = organ_gaps(reader, [*train_ds.ids, *val_ds.ids], d.organs)
        if unknown:
            log(f"{unknown} train / val images name no organ of the vocabulary: the model predicts theirs (its organ "
                "head; data.organs or a labels.csv anatomy column names them)")
    init = load_init_weights(task.model, cfg.init.checkpoint, strict=cfg.init.strict, log=log, trust=trust) \
        if cfg.init.checkpoint else None
    train_dl, val_dl = make_loaders(train_ds, val_ds, batch_size=d.batch_size, seed=cfg.seed,
                                    num_workers=d.num_workers)
    skipped = train_ds.skipped + val_ds.skipped
    record = {"dataset": reader.name, "root": str(reader.root), "split": split_path, "split_hash": split["hash"],
              "split_pinned": split["pinned"], "train": len(train_ds), "val": len(val_ds), "classes": classes,
              "train_class_counts": train_ds.label_counts(len(classes)) if classes else None, "loss": loss,
              "skipped": skipped, "init": init}
    what = f"{len(classes)} classes ({', '.join(classes)})" if classes else "segmentation"
    summary = (f"{cfg.name}: {reader.name} at {reader.root} — train {len(train_ds)}, val {len(val_ds)} images at "
               f"{d.image_size}px, {what}; model {name}; run folder {out}")
    mon = cfg.checkpoint_monitor
    return Prepared(task, train_dl, val_dl, record, summary, monitor=mon, maximize="loss" not in mon,
                    skipped=skipped)


build_supervised.check = check_supervised
