"""A trained segmentation model ready for inference on images of any size (CPU by default)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.preprocess import letterbox, unletterbox
from .checkpoint import build_model, read_task_checkpoint


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

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str = "cpu", threshold: float = 0.5,
                        tta: bool = False, trust: bool = False) -> "Segmenter":
        """The model of a ``sonokit train segment`` checkpoint (read safely; ``trust`` see
        :func:`sonokit.serialization.load_checkpoint`)."""
        ckpt = read_task_checkpoint(path, expect=("segment",), trust=trust)
        return cls.from_loaded(ckpt, path, device=device, threshold=threshold, tta=tta)

    @classmethod
    def from_loaded(cls, ckpt: dict, path: str | Path, *, device: str = "cpu", threshold: float = 0.5,
                    tta: bool = False) -> "Segmenter":
        """From a checkpoint already read by :func:`sonokit.inference.read_task_checkpoint`."""
        hp = ckpt["hyper_parameters"]
        dev = torch.device(device)
        return cls(build_model(ckpt, path).to(dev), int(hp["image_size"]), hp, dev, threshold, tta)

    @torch.no_grad()
    def predict_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Probability maps (H_i, W_i) for a list of (1, H_i, W_i) or (H_i, W_i) float images in [0, 1]."""
        boxes, xs = [], []
        for im in images:
            t = torch.as_tensor(np.asarray(im, dtype=np.float32))
            t = t[None] if t.ndim == 2 else t
            x, box = letterbox(t, self.image_size)
            xs.append(x)
            boxes.append(box)
        x = torch.stack(xs).to(self.device)  # (B, 1, S, S)
        logits = self.logits(x)
        if self.tta:  # mean of the probabilities of the image and of its mirror (mirrored back), as a logit
            prob = 0.5 * (torch.sigmoid(logits) + torch.sigmoid(self.logits(x.flip(-1))).flip(-1))
            logits = torch.logit(prob, eps=1e-6)
        # Logits are resized back (bilinear), then squashed: the 0.5 threshold is the logit's zero crossing.
        return [torch.sigmoid(unletterbox(lg, box))[0].numpy() for lg, box in zip(logits.cpu(), boxes)]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The model's ``logits`` output (models may return a dict of named outputs), as float."""
        out = self.model(x)
        return (out["logits"] if isinstance(out, dict) else out).float()

    def predict(self, image: np.ndarray) -> np.ndarray:
        return self.predict_batch([image])[0]
