"""Load a trained segmentation checkpoint and predict masks for images of any size (CPU by default)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data.preprocess import letterbox, unletterbox
from .errors import CheckpointError
from .models import create_model


def read_checkpoint(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint '{p}' does not exist")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint '{p}': {str(e)[:200]}; is it a complete sonokit .ckpt file?") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise CheckpointError(f"'{p}' is not a sonokit/Lightning checkpoint (no state_dict / hyper_parameters)")
    return ckpt


def load_task_weights(model: torch.nn.Module, ckpt: dict, path: str | Path, name: str) -> torch.nn.Module:
    """Load the ``model.*`` tensors of a sonokit Lightning checkpoint into ``model`` (clear error on mismatch)."""
    sd = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint '{path}' does not fit model '{name}': {str(e)[:300]}") from None
    return model


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
                        tta: bool = False) -> "Segmenter":
        ckpt = read_checkpoint(path)
        hp = dict(ckpt["hyper_parameters"])
        kw = dict(hp.get("model_kwargs") or {})
        kw.pop("encoder_weights", None)  # the trained weights are in the state dict
        kw.pop("encoder_checkpoint", None)
        model = load_task_weights(create_model(hp["model"], **kw), ckpt, path, hp["model"])
        dev = torch.device(device)
        return cls(model.eval().to(dev), int(hp["image_size"]), hp, dev, threshold, tta)

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
        logits = self.model(x).float()
        if self.tta:  # mean of the probabilities of the image and of its mirror (mirrored back), as a logit
            prob = 0.5 * (torch.sigmoid(logits) + torch.sigmoid(self.model(x.flip(-1)).float()).flip(-1))
            logits = torch.logit(prob, eps=1e-6)
        # Logits are resized back (bilinear), then squashed: the 0.5 threshold is the logit's zero crossing.
        return [torch.sigmoid(unletterbox(lg, box))[0].numpy() for lg, box in zip(logits.cpu(), boxes)]

    def predict(self, image: np.ndarray) -> np.ndarray:
        return self.predict_batch([image])[0]
