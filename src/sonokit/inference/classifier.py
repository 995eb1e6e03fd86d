"""A trained classification model ready for inference: class probabilities for images of any size."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.preprocess import letterbox
from .checkpoint import build_model, read_task_checkpoint, torch_device
from .organ import call_model


@dataclass
class Classifier:
    """``predict_batch(images) -> (N, K) probabilities`` in the order of :attr:`classes`. Each image is
    letterboxed to the training size, as in training."""

    model: torch.nn.Module
    image_size: int
    classes: list[str]
    hparams: dict
    device: torch.device
    organ: int | None = None  # organ index for anatomy-conditioned models (:mod:`.organ`); None: predicted

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str = "cpu", trust: bool = False,
                        organ: str | None = None) -> "Classifier":
        return cls.from_loaded(read_task_checkpoint(path, expect=("classify",), trust=trust), path, device=device,
                               organ=organ)

    @classmethod
    def from_loaded(cls, ckpt: dict, path: str | Path, *, device: str = "cpu", organ: str | None = None) -> "Classifier":
        from .organ import resolve_organ

        hp = ckpt["hyper_parameters"]
        dev = torch_device(device)
        classes = list((hp.get("data") or {}).get("classes") or [])
        model = build_model(ckpt, path).to(dev)
        return cls(model, int(hp["image_size"]), classes, hp, dev, resolve_organ(organ, hp, model))

    @torch.no_grad()
    def predict_batch(self, images: list[np.ndarray]) -> np.ndarray:
        xs = []
        for im in images:
            t = torch.as_tensor(np.asarray(im, dtype=np.float32))
            xs.append(letterbox(t[None] if t.ndim == 2 else t, self.image_size)[0])
        out = call_model(self.model, torch.stack(xs).to(self.device), self.organ)
        logits = (out["logits"] if isinstance(out, dict) else out).float()
        return torch.softmax(logits, 1).cpu().numpy()

    def predict(self, image: np.ndarray) -> np.ndarray:
        return self.predict_batch([image])[0]
