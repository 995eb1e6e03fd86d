"""Inference backends and thread counts: eager torch, or the model's ONNX graph in ONNX Runtime.

**ONNX Runtime** (``backend="onnx"``; ``pip install 'sonokit[onnx]'``): the model of a checkpoint is exported once
(:func:`sonokit.inference.onnx.export_onnx`) to a graph cached beside it, ``<checkpoint>.onnx``, with a sidecar
``<checkpoint>.onnx.json`` recording the checkpoint's size and SHA-256, the opset, and the check: on first use the
graph's logits are compared with eager torch's on a fixed random batch at the model's input size and the graph is
used only when they agree (max abs difference ``<= tol``, 1e-3 by default; the difference is recorded). Later uses
read the sidecar, see the same checkpoint, and start the session without building the torch model. A changed
checkpoint re-exports; a cache that cannot be written (read-only folder) falls back to a temporary file.

:class:`OnnxModel` stands in for the torch model inside :class:`~.segmenter.Segmenter` (a callable taking and
returning tensors), so letterboxing, the large-image path and thresholds are the same code for both backends.
It returns logits only: models whose extra outputs (SF-RecSAM's uncertainty maps) or inputs (the A-ViT organ)
are not in the graph stay on torch (:func:`check_onnx_request`).

**Threads** (:func:`default_threads`): the cores this process may use (its CPU affinity) less the load of the
last minute, at least 1: on a machine whose cores are busy, fewer threads than cores is faster than torch's
default of all of them (measured in ``benchmarks/results/inference.md``).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..data.io import sha256_file
from ..errors import ConfigError

BACKENDS = ("torch", "onnx")
CHECK_TOL = 1e-3


def default_threads() -> int:
    """Cores available to this process (affinity) minus the 1-minute load average (rounded), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        busy = round(os.getloadavg()[0])
    except OSError:
        busy = 0
    return max(1, min(cores, cores - busy))


def onnx_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def resolve_backend(backend: str, device: str = "cpu", *, torch_only: str | None = None) -> str:
    """``auto`` -> ``onnx`` when ONNX Runtime is installed, ``device`` is the CPU and nothing asked for needs torch
    (``torch_only``: the reason, e.g. "--tta"), else ``torch``; ``torch``/``onnx`` are checked and returned."""
    if backend not in (*BACKENDS, "auto"):
        raise ConfigError(f"--backend must be one of torch, onnx, auto; found '{backend}'")
    if backend != "auto":
        return backend
    return "onnx" if device == "cpu" and torch_only is None and onnx_available() else "torch"


def set_threads(n: int | None) -> int:
    """Set torch's CPU threads to ``n`` (None: :func:`default_threads`); returns the number used."""
    import torch

    if n is not None and n < 1:
        raise ConfigError(f"--threads must be at least 1, found {n}")
    n = default_threads() if n is None else int(n)
    torch.set_num_threads(n)
    return n


def check_onnx_request(*, save_uncertainty: bool = False, organ: str | None = None, tta: bool = False) -> None:
    """Options the ONNX graph cannot serve, as a clear error (before anything is exported)."""
    if tta:
        raise ConfigError("--backend onnx runs the graph once per image; --tta needs --backend torch")
    if save_uncertainty:
        raise ConfigError("--backend onnx gives the mask only; --save-uncertainty needs --backend torch (the "
                          "uncertainty and correction maps are not in the exported graph)")
    if organ is not None:
        raise ConfigError("--backend onnx: the exported graph has no organ input; use --backend torch with --organ")


class OnnxModel:
    """An ONNX Runtime session used like the torch model: ``model(x) -> logits`` (tensors in, tensors out)."""

    def __init__(self, path: Path, threads: int) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("--backend onnx needs ONNX Runtime: pip install 'sonokit[onnx]'") from None
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.path = path
        self.batch_inputs: tuple[str, ...] = ()

    def __call__(self, x):
        import torch

        out = self.session.run(["logits"], {"image": x.detach().cpu().numpy().astype(np.float32)})[0]
        return torch.from_numpy(out)

    def eval(self) -> "OnnxModel":
        return self

    def to(self, *_a, **_k) -> "OnnxModel":
        return self


def cached_graph(checkpoint: Path) -> tuple[Path, Path]:
    return checkpoint.with_name(checkpoint.name + ".onnx"), checkpoint.with_name(checkpoint.name + ".onnx.json")


def cached_session(checkpoint: Path, threads: int) -> tuple[OnnxModel | None, str | None]:
    """The checkpoint's graph exported and checked earlier (its sidecar says ok for these bytes), in ONNX Runtime,
    or None with the checkpoint's sha256 when there is none (None when size and time already matched)."""
    graph, meta = cached_graph(checkpoint)
    stat = checkpoint.stat()
    info = json.loads(meta.read_text()) if meta.exists() and graph.exists() else {}
    if info.get("size") == stat.st_size and info.get("mtime_ns") == stat.st_mtime_ns and info.get("ok"):
        return OnnxModel(graph, threads), None
    digest = sha256_file(checkpoint)
    if info.get("sha256") == digest and info.get("ok"):  # same bytes, touched: record the new time
        meta.write_text(json.dumps({**info, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}))
        return OnnxModel(graph, threads), None
    return None, digest


def onnx_model(checkpoint: str | Path, *, threads: int, build_torch, image_size: int, task: str = "segment",
               tol: float = CHECK_TOL, log=None, model_name: str | None = None,
               record: dict | None = None) -> OnnxModel:
    """The checkpoint's ONNX graph in ONNX Runtime, exported and checked against torch on first use (module
    docstring). ``build_torch()`` returns the eager model (called only when the graph must be made); ``record``:
    more facts for the sidecar (e.g. ``measure``)."""
    ck = Path(checkpoint)
    session, digest = cached_session(ck, threads)
    if session is not None:
        return session
    graph, meta = cached_graph(ck)
    stat = ck.stat()
    record = {"checkpoint": ck.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest,
              "model": model_name, **(record or {})}
    return export_checked(build_torch, image_size, graph, meta, record, threads=threads, task=task, tol=tol, log=log,
                          name=str(ck))


def export_checked(build_torch, image_size: int, graph: Path, side: Path, record: dict, *, threads: int,
                   task: str = "segment", tol: float = CHECK_TOL, log=None, name: str = "the model") -> OnnxModel:
    """Export ``build_torch()``'s graph to ``graph`` (a read-only folder: a temporary file instead), compare it
    with eager torch on a fixed random batch at ``image_size``, and write the sidecar ``side``: ``record`` plus
    the check (``max_abs_diff``, ``tol``, ``ok``, ``image_size``, ``task``). Raises :class:`ConfigError` when the
    graph differs by more than ``tol``; returns the session."""
    import warnings

    import torch

    from .onnx import export_onnx

    model = build_torch().cpu().eval()
    target = graph
    with warnings.catch_warnings():  # tracer notes on shape checks: the graph is checked numerically below
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            graph.parent.mkdir(parents=True, exist_ok=True)
            export_onnx(model, image_size, target, task=task)
        except PermissionError:  # a read-only folder: a private temporary graph
            target = Path(tempfile.mkdtemp(prefix="sonokit-onnx-")) / graph.name
            side = target.with_name(side.name)
            export_onnx(model, image_size, target, task=task)
    x = torch.rand(2, 1, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(x)
        ref = (ref["logits"] if isinstance(ref, dict) else ref).float()
    sess = OnnxModel(target, threads)
    diff = float((sess(x) - ref).abs().max())
    ok = diff <= tol
    side.write_text(json.dumps({**record, "max_abs_diff": diff, "tol": tol, "ok": ok, "image_size": int(image_size),
                                "task": task}))
    if not ok:
        raise ConfigError(f"the ONNX graph of '{name}' differs from the torch model by {diff:.2e} (> {tol:g}) on a "
                          "check batch; use --backend torch")
    if log is not None:
        log(f"exported {target} (checked against torch: max |difference| {diff:.1e})")
    return sess
