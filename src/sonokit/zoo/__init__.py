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
    measure: str | None = None  # what the CLI measures on its masks: head_circumference (fetal-head models)

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


def entry(name: str, task: str | None = None) -> ZooEntry:
    """The entry named ``name`` or, failing that, the default of the ``--task`` alias ``name`` (of ``task``'s
    models when given: segment | enhance)."""
    all_ = [e for e in entries() if task is None or e.task == task]
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


def cache_dir() -> Path:
    """Where derived files of shipped models go (their ONNX graphs): ``$SONOKIT_CACHE``, else
    ``$XDG_CACHE_HOME/sonokit``, else ``~/.cache/sonokit`` (the installed package may be read-only)."""
    import os

    if os.environ.get("SONOKIT_CACHE"):
        return Path(os.environ["SONOKIT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sonokit"


def graph_paths(e: ZooEntry) -> tuple[Path, Path]:
    """The entry's cached ONNX graph and its sidecar, named by the weights' digest (new weights: a new graph)."""
    stem = cache_dir() / "onnx" / f"{e.name}-{e.sha256[:16]}"
    return stem.with_suffix(".onnx"), stem.with_suffix(".onnx.json")


def torch_model(e: ZooEntry):
    """The entry's network as a torch module in eval mode (float32) and its metadata."""
    sd, meta = weights(e)
    kwargs = json.loads(meta.get("model_kwargs") or "{}")
    if e.task == "enhance":
        from ..enhance.models import create_enhancer

        model = create_enhancer(meta["sonokit_model"], **kwargs)
    else:
        from ..models import create_model

        model = create_model(meta["sonokit_model"], **kwargs)
    model.load_state_dict(sd)
    return model.eval(), meta


def cached_graph(e: ZooEntry) -> tuple[Path, dict] | None:
    """The entry's checked graph and its sidecar when they are cached for these weights, else None."""
    from ..inference.lite import valid_graph

    graph, side = graph_paths(e)
    info = valid_graph(graph, side, None)
    return (graph, info) if info is not None and info.get("sha256") == e.sha256 else None


def onnx_session(e: ZooEntry, image_size: int, *, threads: int, log=None):
    """The entry's graph in ONNX Runtime (:class:`sonokit.inference.backend.OnnxModel`), exported into
    :func:`cache_dir` and checked against torch on first use."""
    from ..inference.backend import OnnxModel, export_checked

    cached = cached_graph(e)
    if cached is not None:
        return OnnxModel(cached[0], threads)
    graph, side = graph_paths(e)
    record = {"zoo": e.name, "sha256": e.sha256, "model": e.name, "measure": e.measure}
    return export_checked(lambda: torch_model(e)[0], image_size, graph, side, record, threads=threads,
                          task=e.task, log=log, name=f"shipped model '{e.name}'")


def lite(name: str, *, threshold: float = 0.5, threads: int = 1):
    """A torch-free :class:`sonokit.inference.lite.LiteSegmenter` for the shipped segmentation model ``name`` when
    its checked ONNX graph is already cached (:func:`load` with ``backend="onnx"`` makes it), else None."""
    from ..inference.lite import LiteSegmenter

    e = entry(name, task="segment")
    cached = cached_graph(e)
    if cached is None:
        return None
    graph, info = cached
    return LiteSegmenter(graph, info["image_size"], threshold=threshold, threads=threads,
                         hparams={"model": e.name, "image_size": info["image_size"], "zoo": e.name,
                                  "measure": e.measure},
                         fallback=lambda: load(e.name, threshold=threshold, threads=threads, backend="onnx"))


def load(name: str, *, device: str = "cpu", threshold: float = 0.5, tta: bool = False, threads: int | None = None,
         backend: str = "torch", log=None):
    """A ready-to-use predictor for the shipped model ``name`` (or a ``--task`` alias such as ``breast``):
    a :class:`sonokit.inference.Segmenter` for a segmentation model (``backend="onnx"``: its graph in ONNX Runtime,
    CPU, made and checked on first use; :func:`lite` then serves it without torch)."""
    from ..inference.backend import BACKENDS, default_threads, set_threads
    from ..inference.checkpoint import torch_device

    e = entry(name)
    if e.task != "segment":
        raise ConfigError(f"shipped model '{e.name}' is a '{e.task}' model; load() serves segmentation models "
                          "(enhancers: load_enhancer)")
    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}; found '{backend}'")
    if threads is not None:
        set_threads(threads)
    from ..inference import Segmenter

    dev = torch_device(device)
    if backend == "onnx":
        if dev.type != "cpu":
            raise ConfigError(f"--backend onnx runs on the CPU; found --device {device}")
        meta = _meta_of(e)
        model = onnx_session(e, int(meta["image_size"]), threads=threads or default_threads(), log=log)
    else:
        model, meta = torch_model(e)
        model = model.to(dev)
    hp = {"model": meta["sonokit_model"], "image_size": int(meta["image_size"]), "task": "segment",
          "data": {"classes": json.loads(meta.get("classes") or "null")}, "zoo": e.name, "measure": e.measure}
    return Segmenter(model, int(meta["image_size"]), hp, dev, threshold, tta)


def load_enhancer(name: str, *, device: str = "cpu", backend: str = "torch", threads: int | None = None, log=None):
    """The shipped enhancement model ``name`` (or alias, e.g. ``blind`` or ``guide``) and hparams as
    :func:`sonokit.enhance.inference.load_enhancer` returns them (``backend="onnx"``: an
    :class:`sonokit.enhance.onnx.OnnxEnhancer`, CPU)."""
    from ..inference.backend import default_threads, set_threads
    from ..inference.checkpoint import torch_device

    e = entry(name, task="enhance")
    if threads is not None:
        set_threads(threads)
    meta = _meta_of(e)
    hp = {"model": meta["sonokit_model"], "task": "enhance", "zoo": e.name,
          **json.loads(meta.get("hparams") or "{}")}
    if backend == "onnx":
        from ..enhance.onnx import OnnxEnhancer

        if torch_device(device).type != "cpu":
            raise ConfigError(f"--backend onnx runs on the CPU; found --device {device}")
        multiple = int(meta.get("multiple") or 1)
        sess = onnx_session(e, max(64, multiple), threads=threads or default_threads(), log=log)
        return OnnxEnhancer(sess, multiple=multiple, name=meta["sonokit_model"]), hp
    net, _ = torch_model(e)
    return net.to(torch_device(device)), hp


def _meta_of(e: ZooEntry) -> dict:
    """The safetensors header's metadata (read without torch)."""
    import struct

    with open(e.path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        if not 0 < n < 100_000_000:
            raise CheckpointError(f"shipped model '{e.name}': {e.path} is not a safetensors file (reinstall sonokit)")
        return json.loads(fh.read(n)).get("__metadata__") or {}


__all__ = ["ZooEntry", "cache_dir", "entries", "entry", "lite", "load", "load_enhancer", "weights"]
