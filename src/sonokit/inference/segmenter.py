"""A trained segmentation model ready for inference on images of any size (CPU by default).

Images are letterboxed to the model's input size (bilinear with antialiasing), predicted, and the logits mapped
back to the image size (bilinear). Images with more than :data:`LARGE_PIXELS` pixels (4096 x 4096, 16.8 M;
``Segmenter.large_pixels`` overrides it) take a path whose memory does not grow with a float copy of the image:
the image (uint8/uint16 as read, or float) is area-averaged in row chunks straight to the letterbox size
(:func:`sonokit.data.resample.area_resize`), predicted, and the small logit map is resized to the full size in
row chunks (:func:`sonokit.data.resample.bilinear_rows`, the same bilinear resize). Smaller images keep the
plain path, so evaluation numbers do not depend on this.

**Extra outputs.** Models that return more than ``logits`` (SF-RecSAM: ``uncertainty``, ``fp_logits``,
``fn_logits``, ``initial_logits``) have them kept on request (:meth:`Segmenter.predict_maps`,
``segment(..., extras=True)``) as maps in [0, 1] named by :data:`EXTRA_OUTPUTS` (``uncertainty``; ``fp`` / ``fn``:
the corrector branches' probabilities; ``initial``: the probability before correction), mapped back through
the letterbox to the image's size exactly as the probability is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.preprocess import Letterbox, letterbox, unletterbox
from ..data.resample import area_resize, bilinear_resize, bilinear_rows, unit_scale
from ..errors import ConfigError
from .checkpoint import build_model, read_task_checkpoint, torch_device
from .organ import call_model

LARGE_PIXELS = 4096 * 4096
from .extras import EXTRA_OUTPUTS  # noqa: E402,F401  (model outputs kept as extra maps)


@dataclass
class Segmentation:
    """One image's result: ``mask`` (H, W) bool (probability >= threshold), ``prob`` (H, W) float32 in [0, 1],
    or uint8 (probability x 255, rounded) for a large image; ``large``: it took the large-image path;
    ``extras``: the model's extra maps (:data:`EXTRA_OUTPUTS`) at (H, W), same dtypes as ``prob``, when asked for."""

    mask: np.ndarray
    prob: np.ndarray
    max_prob: float
    foreground: float  # fraction of pixels in the mask
    large: bool = False
    extras: dict[str, np.ndarray] = field(default_factory=dict)


def _unit_float(im) -> np.ndarray:
    """Float images as float32 (unchanged); integer images scaled to [0, 1] (uint8 / 255, uint16 / 65535)."""
    a = np.asarray(im)
    if a.dtype.kind in "ub":
        return a.astype(np.float32) * np.float32(unit_scale(a.dtype))
    return np.asarray(a, dtype=np.float32)


@dataclass
class Segmenter:
    """A model ready for inference: ``predict(image (1,H,W) or (H,W)) -> probability map (H, W)``.

    ``tta=True`` averages the probabilities of the image and its left-right mirror (test-time augmentation
    as nnU-Net does by default; only the horizontal flip, which the training augmentation also uses, since
    ultrasound has a fixed depth axis). It doubles inference time.
    """

    model: torch.nn.Module
    image_size: int
    hparams: dict
    device: torch.device
    threshold: float = 0.5
    tta: bool = False
    large_pixels: int | None = None  # None: LARGE_PIXELS
    organ: int | None = None  # organ index for anatomy-conditioned models (:mod:`.organ`); None: predicted

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str = "cpu", threshold: float = 0.5,
                        tta: bool = False, trust: bool = False, large_pixels: int | None = None,
                        organ: str | None = None, backend: str = "torch", threads: int | None = None,
                        log=None) -> "Segmenter":
        """The model of a ``sonokit train segment`` checkpoint (read safely; ``trust`` see
        :func:`sonokit.serialization.load_checkpoint`); ``organ``: a name of the model's organ vocabulary.
        ``backend``: ``torch``, ``onnx`` (the checkpoint's graph in ONNX Runtime, exported and checked
        against torch on first use: :mod:`.backend`; CPU only) or ``auto`` (ONNX where ONNX Runtime is installed,
        the device is the CPU, no organ is given and the graph computes all the model does; else torch);
        ``threads``: CPU threads (None: torch's setting, and for ONNX :func:`~.backend.default_threads`)."""
        from .backend import BACKENDS, cached_session, default_threads, onnx_model, resolve_backend, set_threads
        from .onnx import partial_graph

        if backend not in (*BACKENDS, "auto"):
            raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, auto; found '{backend}'")
        if threads is not None:
            set_threads(threads)
        ckpt = read_task_checkpoint(path, expect=("segment",), trust=trust)
        auto = backend == "auto"
        if auto:
            backend = resolve_backend("auto", device, torch_only="--organ" if organ is not None else None)
        if backend == "onnx" and torch_device(device).type != "cpu":
            raise ConfigError(f"--backend onnx runs on the CPU; found --device {device}")
        if backend == "onnx" and organ is not None:
            raise ConfigError("--backend onnx: the exported graph has no organ input; use --backend torch with --organ")
        n_threads = threads or default_threads()
        session = cached_session(Path(path), n_threads)[0] if backend == "onnx" else None
        built = build_model(ckpt, path) if backend == "onnx" and session is None else None
        note = partial_graph(built) if built is not None else None  # a graph checked ok earlier is never partial
        if note and auto:
            backend = "torch"
        elif note:
            raise ConfigError(f"--backend onnx cannot serve this model: {note}; use --backend torch")
        if backend == "torch":
            return cls.from_loaded(ckpt, path, device=device, threshold=threshold, tta=tta,
                                   large_pixels=large_pixels, organ=organ, model=built)
        hp = ckpt["hyper_parameters"]
        from .files import measures_head

        model = session or onnx_model(path, threads=n_threads, build_torch=lambda: built,
                                      image_size=int(hp["image_size"]), log=log, model_name=str(hp.get("model")),
                                      record={"measure": "head_circumference" if measures_head(hp) else None})
        return cls(model, int(hp["image_size"]), hp, torch.device("cpu"), threshold, tta, large_pixels)

    @classmethod
    def from_loaded(cls, ckpt: dict, path: str | Path, *, device: str = "cpu", threshold: float = 0.5,
                    tta: bool = False, large_pixels: int | None = None, organ: str | None = None,
                    model: torch.nn.Module | None = None) -> "Segmenter":
        """From a checkpoint already read by :func:`sonokit.inference.read_task_checkpoint` (``model``: its model,
        when already built from it)."""
        from .organ import resolve_organ

        hp = ckpt["hyper_parameters"]
        dev = torch_device(device)
        model = (model if model is not None else build_model(ckpt, path)).to(dev)
        return cls(model, int(hp["image_size"]), hp, dev, threshold, tta, large_pixels,
                   resolve_organ(organ, hp, model))

    @property
    def large_threshold(self) -> int:
        """Images with more pixels than this take the large-image path (module docstring)."""
        return LARGE_PIXELS if self.large_pixels is None else int(self.large_pixels)

    def is_large(self, height: int, width: int) -> bool:
        return height * width > self.large_threshold

    @torch.no_grad()
    def predict_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Probability maps (H_i, W_i) float32 for a list of (1, H_i, W_i) or (H_i, W_i) images in [0, 1]
        (integer images are scaled: uint8 / 255, uint16 / 65535)."""
        return [m["prob"] for m in self.predict_maps(images, extras=False)]

    @torch.no_grad()
    def predict_maps(self, images: list[np.ndarray], *, extras: bool = True) -> list[dict[str, np.ndarray]]:
        """Per image ``{"prob": (H_i, W_i) float32, **extra maps}``: the probability and, with ``extras``, the
        model's extra outputs (:data:`EXTRA_OUTPUTS`, in [0, 1]) mapped back through the letterbox."""
        large = [i for i, im in enumerate(images) if self.is_large(*np.shape(im)[-2:])]
        if large:
            rest = iter(self.predict_maps([im for i, im in enumerate(images) if i not in large], extras=extras))
            return [self.large_maps(im, extras=extras) if i in large else next(rest) for i, im in enumerate(images)]
        if not images:
            return []
        boxes, xs = [], []
        for im in images:
            t = torch.as_tensor(_unit_float(im))
            t = t[None] if t.ndim == 2 else t
            x, box = letterbox(t, self.image_size)
            xs.append(x)
            boxes.append(box)
        x = torch.stack(xs).to(self.device)  # (B, 1, S, S)
        logits, more = self.tta_maps(x)
        out = []
        for i, box in enumerate(boxes):
            # Logits are resized back (bilinear), then squashed: the 0.5 threshold is the logit's zero crossing.
            d = {"prob": torch.sigmoid(unletterbox(logits[i].cpu(), box))[0].numpy()}
            if extras:
                d |= {k: unletterbox(v[i].cpu(), box)[0].clamp(0, 1).numpy() for k, v in more.items()}
            out.append(d)
        return out

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The model's ``logits`` output (models may return a dict of named outputs), as float."""
        out = call_model(self.model, x, self.organ)
        return (out["logits"] if isinstance(out, dict) else out).float()

    def tta_logits(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`logits`, with ``tta`` the mean of the probabilities of the image and of its mirror (mirrored
        back), as a logit."""
        return self.tta_maps(x)[0]

    def maps(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The model's logits (B, 1, S, S) and its extra outputs as maps in [0, 1] (:data:`EXTRA_OUTPUTS`)."""
        out = call_model(self.model, x, self.organ)
        if not isinstance(out, dict):
            return out.float(), {}
        more = {name: torch.sigmoid(out[k].float()) if is_logit else out[k].float().clamp(0, 1)
                for k, (name, is_logit) in EXTRA_OUTPUTS.items() if k in out}
        return out["logits"].float(), more

    def tta_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """:meth:`maps`; with ``tta`` each map is the mean of the image's and its mirror's (mirrored back)."""
        logits, more = self.maps(x)
        if self.tta:
            lf, mf = self.maps(x.flip(-1))
            prob = 0.5 * (torch.sigmoid(logits) + torch.sigmoid(lf).flip(-1))
            logits = torch.logit(prob, eps=1e-6)
            more = {k: 0.5 * (v + mf[k].flip(-1)) for k, v in more.items()}
        return logits, more

    @torch.no_grad()
    def small_logits(self, image: np.ndarray) -> np.ndarray:
        """Large-image path, first half: the logits (h, w) of the letterbox's valid region, the image
        area-averaged to (h, w) in row chunks (no float copy of the image)."""
        return self.small_maps(image)[0]

    @torch.no_grad()
    def small_maps(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """:meth:`small_logits` and the extra maps (h, w) of the same region."""
        image = image.reshape(image.shape[-2:])
        box = Letterbox.fit(*image.shape, self.image_size)
        x = torch.zeros(1, 1, box.size, box.size)
        rs, cs = box.valid()
        x[0, 0, rs, cs] = torch.from_numpy(area_resize(image, box.new_h, box.new_w))
        logits, more = self.tta_maps(x.to(self.device))
        return logits[0, 0, rs, cs].cpu().numpy(), {k: v[0, 0, rs, cs].cpu().numpy() for k, v in more.items()}

    def segment(self, image: np.ndarray, *, rows: int = 256, extras: bool = False) -> Segmentation:
        """Mask and probability map of one (H, W) or (1, H, W) image (float in [0, 1], or uint8/uint16), and
        with ``extras`` the model's extra maps. Large images (:meth:`is_large`) go through :meth:`small_maps`
        and a row-chunked bilinear resize; their ``prob`` and extra maps are uint8 (x 255), so memory stays
        near 2 bytes per pixel (plus one per extra map)."""
        H, W = np.shape(image)[-2:]
        if not self.is_large(H, W):
            maps = self.predict_maps([image], extras=extras)[0]
            prob = maps.pop("prob")
            mask = prob >= self.threshold
            return Segmentation(mask, prob, float(prob.max()), float(mask.mean()), extras=maps)
        small, more = self.small_maps(np.asarray(image))
        mask, prob8 = np.empty((H, W), bool), np.empty((H, W), np.uint8)
        top, fg = 0.0, 0
        for r0, r1, lg in bilinear_rows(small, H, W, rows=rows):
            p = torch.sigmoid(torch.from_numpy(lg)).numpy()  # (rows, W) float32 probabilities
            mask[r0:r1] = p >= self.threshold
            prob8[r0:r1] = np.round(p * 255)
            top, fg = max(top, float(p.max())), fg + int(mask[r0:r1].sum())
        maps = {k: _rows_uint8(v, H, W, rows) for k, v in more.items()} if extras else {}
        return Segmentation(mask, prob8, top, fg / (H * W), large=True, extras=maps)

    def predict(self, image: np.ndarray) -> np.ndarray:
        return self.predict_batch([image])[0]

    def large_prob(self, image: np.ndarray, *, rows: int = 256) -> np.ndarray:
        """The large-image path's probability map (H, W) as float32 (for :meth:`predict_batch`)."""
        return self.large_maps(image, rows=rows, extras=False)["prob"]

    def large_maps(self, image: np.ndarray, *, rows: int = 256, extras: bool = True) -> dict[str, np.ndarray]:
        """The large-image path's probability and (``extras``) extra maps (H, W) as float32."""
        H, W = np.shape(image)[-2:]
        small, more = self.small_maps(np.asarray(image))
        out = {"prob": np.empty((H, W), np.float32)}
        for r0, r1, lg in bilinear_rows(small, H, W, rows=rows):
            out["prob"][r0:r1] = torch.sigmoid(torch.from_numpy(lg)).numpy()
        if extras:
            out |= {k: np.clip(bilinear_resize(v, H, W, rows=rows), 0, 1) for k, v in more.items()}
        return out


def _rows_uint8(small: np.ndarray, H: int, W: int, rows: int) -> np.ndarray:
    """A small map in [0, 1] resized (bilinear, in row chunks) to (H, W) uint8 x 255."""
    out = np.empty((H, W), np.uint8)
    for r0, r1, chunk in bilinear_rows(small, H, W, rows=rows):
        out[r0:r1] = np.round(np.clip(chunk, 0, 1) * 255)
    return out
