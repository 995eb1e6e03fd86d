"""Trained models shipped inside sonokit: ``sonokit.load("busi-lesion")``, ``sonokit models --pretrained``,
``sonokit segment scan.png --task breast`` without a checkpoint.

Each entry of ``index.json`` (data, not code) names a weight file in ``weights/`` (safetensors written by
:func:`sonokit.export.export_safetensors`, possibly fp16: it is read back as float32), its SHA-256 (checked on
load: a damaged or swapped file is an error, never a silently different model), the task and the ``task``
alias the CLI's ``--task`` takes (e.g. ``breast``), and a model card in ``cards/`` generated from the run that
trained it (:mod:`.build`: data and split, config, commit, test metrics, intended use, failure modes).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, ConfigError

HERE = Path(__file__).resolve().parent
INDEX = HERE / "index.json"


@dataclass
class ZooEntry:
    name: str
    task: str  # segment | classify | enhance
    alias: str | None  # the CLI's --task value that picks it by default (e.g. breast)
    file: str  # under weights/
    sha256: str
    dtype: str
    card: str  # under cards/
    summary: str

    @property
    def path(self) -> Path:
        return HERE / "weights" / self.file

    @property
    def card_path(self) -> Path:
        return HERE / "cards" / self.card


def entries() -> list[ZooEntry]:
    """The shipped models, in the index's order."""
    if not INDEX.exists():
        return []
    return [ZooEntry(**e) for e in json.loads(INDEX.read_text())["models"]]


def entry(name: str) -> ZooEntry:
    """The entry named ``name`` or, failing that, the default of the ``--task`` alias ``name``."""
    all_ = entries()
    for e in all_:
        if e.name == name:
            return e
    for e in all_:
        if e.alias == name:
            return e
    known = ", ".join(f"{e.name} (--task {e.alias})" if e.alias else e.name for e in all_) or "none"
    raise ConfigError(f"no shipped model '{name}'; shipped: {known}")


def weights(e: ZooEntry) -> tuple[dict, dict]:
    """The entry's tensors as float32 and its metadata; the file's SHA-256 is checked first."""
    from ..data.io import sha256_file
    from ..serialization import load_weights

    if not e.path.exists():
        raise CheckpointError(f"shipped model '{e.name}': {e.path} is missing (a broken install?)")
    digest = sha256_file(e.path)
    if digest != e.sha256:
        raise CheckpointError(f"shipped model '{e.name}': {e.path} has SHA-256 {digest[:12]}..., the index records "
                              f"{e.sha256[:12]}...; the file is damaged or was replaced - reinstall sonokit")
    sd, meta = load_weights(e.path, trustable=False)
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, meta


def load(name: str, *, device: str = "cpu", threshold: float = 0.5, tta: bool = False, threads: int | None = None):
    """A ready-to-use predictor for the shipped model ``name`` (or a ``--task`` alias such as ``breast``):
    a :class:`sonokit.inference.Segmenter` for a segmentation model."""
    from ..inference.backend import set_threads
    from ..inference.checkpoint import torch_device
    from ..models import create_model

    e = entry(name)
    if e.task != "segment":
        raise ConfigError(f"shipped model '{e.name}' is a '{e.task}' model; load() serves segmentation models")
    if threads is not None:
        set_threads(threads)
    sd, meta = weights(e)
    model = create_model(meta["sonokit_model"], **json.loads(meta.get("model_kwargs") or "{}"))
    model.load_state_dict(sd)
    from ..inference import Segmenter

    dev = torch_device(device)
    hp = {"model": meta["sonokit_model"], "image_size": int(meta["image_size"]), "task": "segment",
          "data": {"classes": json.loads(meta.get("classes") or "null")}, "zoo": e.name}
    return Segmenter(model.eval().to(dev), int(meta["image_size"]), hp, dev, threshold, tta)


__all__ = ["ZooEntry", "entries", "entry", "load", "weights"]
