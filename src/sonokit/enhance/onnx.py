"""An enhancement network's ONNX graph in ONNX Runtime, used where the torch :class:`~.models.Enhancer` is
(``sonokit enhance --backend onnx``): tensors in, tensors out, CPU.

The graph holds the inner network with dynamic height and width (:meth:`~.models.Enhancer.onnx_module`); the
padding to the network's size multiple and the crop back are done here, as :class:`~.models.Enhancer` does them
(reflect, or replicate for an image smaller than the padding), so whole-image and tiled inference
(:func:`~.inference.enhance_image`) are the same code for both backends.
"""
from __future__ import annotations

import torch

from .models import pad_to_multiple


class OnnxEnhancer:
    """``OnnxEnhancer(session, multiple=m, name=...)(x)``: (B, 1, H, W) -> (B, 1, H, W), like the Enhancer."""

    device = torch.device("cpu")

    def __init__(self, session, *, multiple: int, name: str) -> None:
        self.session, self.multiple, self.name = session, int(multiple), name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"{self.name} expects (B, 1, H, W) images, found shape {tuple(x.shape)}")
        H, W = x.shape[-2:]
        return self.session(pad_to_multiple(x.float(), self.multiple))[..., :H, :W]

    def eval(self) -> "OnnxEnhancer":
        return self

    def to(self, *_a, **_k) -> "OnnxEnhancer":
        return self
