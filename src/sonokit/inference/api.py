"""``sonokit.predict(checkpoint, images)``: a trained model applied to arrays or image files."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _image(x) -> np.ndarray:
    if isinstance(x, (str, Path)):
        from ..data.io import read_image

        return read_image(x)[0]
    return np.asarray(x, dtype=np.float32)


def predict(checkpoint: str | Path, images, *, device: str = "cpu", tta: bool = False, trust: bool = False,
            batch_size: int = 8) -> list[np.ndarray]:
    """Apply the model in ``checkpoint`` to ``images`` (an (H, W) / (1, H, W) array in [0, 1], a file path,
    or a list of them). Returns, per image, the foreground probability map (H, W) for a segmentation model,
    or the class probabilities (K,) in the order of the model's classes for a classification model."""
    from .checkpoint import read_task_checkpoint
    from .classifier import Classifier
    from .segmenter import Segmenter

    items = images if isinstance(images, (list, tuple)) else [images]
    ckpt = read_task_checkpoint(checkpoint, expect=("segment", "classify"), trust=trust)
    if ckpt["hyper_parameters"]["task"] == "segment":
        model = Segmenter.from_loaded(ckpt, checkpoint, device=device, tta=tta)
    else:
        model = Classifier.from_loaded(ckpt, checkpoint, device=device)
    out: list[np.ndarray] = []
    for start in range(0, len(items), batch_size):
        out.extend(model.predict_batch([_image(x) for x in items[start:start + batch_size]]))
    return out
