"""Segmentation with ONNX Runtime and NumPy only: no torch import, so ``sonokit segment --backend onnx`` starts in
well under a second once the graph exists (``import torch`` alone takes seconds).

:class:`LiteSegmenter` does what :class:`~.segmenter.Segmenter` does on its plain path: letterbox the image to
the model's size (antialiased bilinear, PIL's filter — the one torch's ``antialias=True`` reproduces), run the
graph, crop the letterbox, resize the logits back bilinearly (:func:`sonokit.data.resample.bilinear_resize`,
torch's ``align_corners=False``), sigmoid, threshold. Masks agree with the torch backend up to resampling round-off
(checked in the tests). TTA, extra maps and the organ are the torch segmenter's: the caller asks for it instead.
An image above the large-image limit (:data:`LARGE_PIXELS`) goes to ``fallback()`` - the torch segmenter running
the same graph, whose large-image path reduces it in row chunks - built on first need.

The graph and a sidecar JSON (checkpoint digest, input size, check against torch) come from
:func:`~.backend.onnx_model` (first use, which needs torch); this module only reads a valid pair.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LARGE_PIXELS = 4096 * 4096  # as sonokit.inference.segmenter


@dataclass
class LiteResult:
    mask: np.ndarray
    prob: np.ndarray
    max_prob: float
    foreground: float
    large: bool = False
    extras: dict = field(default_factory=dict)


def letterbox_np(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """(H, W) float32 -> (size, size) float32 and (top, left, new_h, new_w), as :func:`sonokit.data.preprocess.letterbox`."""
    from PIL import Image

    H, W = image.shape
    scale = size / max(H, W)
    nh, nw = max(1, round(H * scale)), max(1, round(W * scale))
    small = image if (nh, nw) == (H, W) else np.asarray(
        Image.fromarray(image.astype(np.float32), mode="F").resize((nw, nh), Image.BILINEAR), dtype=np.float32)
    out = np.zeros((size, size), np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = small
    return out, (top, left, nh, nw)


class LiteSegmenter:
    """A segmentation graph in ONNX Runtime: ``segment(image) -> LiteResult`` (same fields as
    :class:`~.segmenter.Segmentation`); ``large_threshold`` as the torch segmenter's."""

    def __init__(self, graph: Path, image_size: int, *, threshold: float = 0.5, threads: int = 1,
                 hparams: dict | None = None, fallback=None) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = int(threads), 1
        self.session = ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])
        self.image_size, self.threshold = int(image_size), float(threshold)
        self.hparams = hparams or {}
        self.fallback, self._large = fallback, None

    @property
    def large_threshold(self) -> int:
        return LARGE_PIXELS if self.fallback is not None else 2**62  # no fallback: every image whole

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"image": x.astype(np.float32)})[0]

    def predict(self, image: np.ndarray) -> np.ndarray:
        from ..data.resample import bilinear_resize, unit_scale

        im = np.asarray(image)
        im = im.reshape(im.shape[-2:])
        if im.dtype.kind in "ub":
            im = im.astype(np.float32) * np.float32(unit_scale(im.dtype))
        H, W = im.shape
        x, (top, left, nh, nw) = letterbox_np(im.astype(np.float32), self.image_size)
        z = self.logits(x[None, None])[0, 0, top:top + nh, left:left + nw]
        if (nh, nw) != (H, W):
            z = bilinear_resize(np.ascontiguousarray(z, dtype=np.float32), H, W)
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def segment(self, image: np.ndarray, *, extras: bool = False) -> LiteResult:
        H, W = np.shape(image)[-2:]
        if H * W > self.large_threshold:
            if self._large is None:
                self._large = self.fallback()
            return self._large.segment(image)
        prob = self.predict(image)
        mask = prob >= self.threshold
        return LiteResult(mask, prob, float(prob.max()), float(mask.mean()))


def valid_graph(graph: Path, side: Path, checkpoint: Path | None) -> dict | None:
    """The sidecar of a graph that exists, passed its check, and belongs to ``checkpoint`` as it is now (same
    size and modification time); None otherwise."""
    if not (graph.exists() and side.exists()):
        return None
    try:
        info = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    if not info.get("ok") or "image_size" not in info:
        return None
    if checkpoint is not None:
        st = checkpoint.stat()
        if info.get("size") != st.st_size or info.get("mtime_ns") != st.st_mtime_ns:
            return None
    return info


def lite_segmenter(checkpoint: Path, *, threshold: float, threads: int) -> LiteSegmenter | None:
    """A :class:`LiteSegmenter` when ``checkpoint``'s cached graph is valid (:func:`valid_graph`), else None;
    large images go to the torch segmenter running the same graph."""
    graph = checkpoint.with_name(checkpoint.name + ".onnx")
    info = valid_graph(graph, checkpoint.with_name(checkpoint.name + ".onnx.json"), checkpoint)
    if info is None:
        return None
    def fallback():
        from .segmenter import Segmenter

        return Segmenter.from_checkpoint(checkpoint, threshold=threshold, backend="onnx", threads=threads)

    return LiteSegmenter(graph, info["image_size"], threshold=threshold, threads=threads,
                         hparams={"model": info.get("model"), "image_size": info["image_size"],
                                  "measure": info.get("measure")}, fallback=fallback)
