"""``sonokit.evaluate(checkpoint, ...)``: score a trained model on held-out data, refusing silent mistakes.

The data, split file and class filter default to those the checkpoint was trained with. Before scoring,
the data is checked against the checkpoint's record (:func:`sonokit.data.pin.data_changes`): a split file
that changed since training, test images that were training images of the model, or images whose files
changed are refused (or, with ``allow_changed_data``, scored with a loud warning recorded in the result).
A part (``test``, ``val``, ``train``) needs a split file; scoring every image is ``split="all"``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import ConfigError, DataError

PARTS = ("test", "val", "train", "all")


def default_name(part: str, data: str | Path | None) -> str:
    """``test`` for the training dataset; ``<folder>_<part>`` for another dataset (so several don't collide)."""
    from ..data.io import safe_name

    return part if data is None else f"{safe_name(Path(data).resolve().name) or 'data'}_{part}"


def evaluate(checkpoint: str | Path, *, split: str = "test", data: str | Path | None = None,
             format: str | None = None, split_file: str | Path | None = None, out: str | Path | None = None,
             name: str | None = None, device: str = "cpu", threshold: float = 0.5, tta: bool = False,
             allow_changed_data: bool = False, trust: bool = False, save_overlays: bool = False,
             save_uncertainty: bool = False, organ: str | None = None, log: Callable[[str], None] | None = print,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Score the segmentation or classification model in ``checkpoint`` on ``split`` of its dataset (or of
    ``data``); writes ``<name>.json`` and ``<name>_per_image.csv`` into ``out`` (default: the run's
    ``eval/``; segmentation with ``save_overlays``: ``<name>_overlays/<id>.png``, image | ground truth |
    prediction; with ``save_uncertainty`` the model's uncertainty / FP / FN maps as ``<name>_uncertainty/<id>.png``
    etc.) and returns the result (``aggregate`` for segmentation, ``metrics`` for classification).
    ``organ`` (anatomy-conditioned models): an organ name given for every image, or ``"dataset"``: the
    dataset's own anatomy (BUSI: breast); None: the model predicts it."""
    from ..data import open_dataset
    from ..data.pin import data_changes
    from ..data.splits import filter_classes, load_split, select_ids, verify_split
    from ..inference import Classifier, Segmenter, read_task_checkpoint

    if split not in PARTS:
        raise ConfigError(f"--split must be one of {', '.join(PARTS)}; found '{split}'")
    say = log or (lambda s: None)
    checkpoint = Path(checkpoint)
    ckpt = read_task_checkpoint(checkpoint, expect=("segment", "classify"), trust=trust)
    hp = ckpt["hyper_parameters"]
    task = hp["task"]
    trained = hp.get("data") or {}
    own_data = data is None or (trained.get("root") and Path(data).resolve() == Path(trained["root"]).resolve())
    root = data if data is not None else trained.get("root")
    if root is None:
        raise ConfigError(f"checkpoint '{checkpoint}' records no dataset; pass --data")
    reader = open_dataset(root, format if data is not None else (format or trained.get("format")))
    label_key = trained.get("label_key", "label")
    sfile = split_file or (trained.get("split") if own_data else None)
    if split == "all":
        ids = list(reader.ids)
    else:
        if sfile is None:
            raise ConfigError(f"--split {split}: there is no split file for '{root}' (the model was trained on "
                              "another dataset); pass --split-file, or --split all to score every image")
        sp = load_split(sfile)
        verify_split(sp, reader.ids, str(sfile))
        ids = select_ids(sp, split)
    class_filter = trained.get("class_filter", trained.get("classes") if task == "segment" else None)
    if own_data:
        ids = filter_classes(ids, reader, class_filter, label_key=label_key)
    warnings = []
    if own_data and split != "all":
        warnings = data_changes(trained, split_path=str(sfile), part=split, ids=ids, reader=reader)
        if warnings and not allow_changed_data:
            raise DataError(f"evaluate refuses to score '{checkpoint}' on '{split}': " + "; ".join(warnings)
                            + ". Pass --allow-changed-data to score it anyway (the result records the warning)")
        for w in warnings:
            say(f"WARNING: {w}")
    if organ == "dataset":  # the anatomy the scored images name (one for all of them)
        names = {reader.record(i).anatomy or reader.anatomy for i in ids}
        if len(names) != 1 or None in names:
            raise ConfigError(f"--organ dataset: the scored images of '{root}' name "
                              f"{'no anatomy' if names == {None} else 'several anatomies ' + str(sorted(map(str, names)))}"
                              "; give the organ's name")
        organ = names.pop()
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    out = Path(out) if out is not None else run_dir / "eval"
    nm = name or default_name(split, None if own_data and data is None else root)
    if task == "segment":
        from .segment import evaluate_segmentation

        seg = Segmenter.from_loaded(ckpt, checkpoint, device=device, threshold=threshold, tta=tta, organ=organ)
        res = evaluate_segmentation(seg, data_root=root, data_format=reader.name, ids=ids, out_dir=out, name=nm,
                                    progress=progress, save_overlays=save_overlays,
                                    save_uncertainty=save_uncertainty, extra={"checkpoint": str(checkpoint), "part": split,
                                                              "split_file": str(sfile) if sfile else None,
                                                              "data_warnings": warnings, "organ": organ})
    else:
        from .classify import evaluate_classification

        clf = Classifier.from_loaded(ckpt, checkpoint, device=device, organ=organ)
        res = evaluate_classification(clf, data_root=root, data_format=reader.name, ids=ids, label_key=label_key,
                                      out_dir=out, name=nm, progress=progress,
                                      extra={"checkpoint": str(checkpoint), "part": split,
                                             "split_file": str(sfile) if sfile else None, "data_warnings": warnings,
                                             "organ": organ})
    res["out"] = str(out / f"{nm}.json")
    return res
