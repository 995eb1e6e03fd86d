"""timm CNNs (ResNets) as multi-scale encoders: five feature maps at strides 2, 4, 8, 16, 32."""
from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from ...errors import CheckpointError
from . import ENCODERS
from .checkpoint import load_timm_weights


class TimmEncoder(nn.Module):
    """A timm CNN as a multi-scale feature extractor (``features_only``).

    Args:
        name: timm model name (e.g. ``"resnet50"``).
        in_chans: input channels (1 for B-mode). ImageNet RGB stems are summed over colour (timm's
            ``adapt_input_conv``) when weights are loaded.
        weights: path to ImageNet (or other timm-format) weights: ``.pth``, ``.bin`` or ``.safetensors``, read with
            :func:`sonokit.serialization.load_weights`. Every key but the classifier (``fc.*``) must fit: a file
            of another architecture is a :class:`CheckpointError`. None means random initialisation; nothing is
            ever downloaded.

    Shapes: (B, in_chans, H, W) -> [(B, out_channels[i], H / reductions[i], W / reductions[i])], any H, W
    (maps are rounded up at each stride). Weights live under ``model.*`` (timm's own key names).
    """

    def __init__(self, name: str, *, in_chans: int = 1, weights: str | Path | None = None) -> None:
        super().__init__()
        p = Path(weights) if weights is not None else None
        if p is not None and not p.exists():  # (a folder: load_weights says what it holds)
            raise CheckpointError(f"encoder weights '{p}' do not exist; expected a .pth/.safetensors file for timm '{name}'")
        self.model = timm.create_model(name, features_only=True, in_chans=in_chans)
        if p is not None:  # read safely, handed to timm as a state dict; every key but the classifier must fit
            load_timm_weights(self.model, p, in_chans=in_chans, what=f"timm model '{name}' (in_chans {in_chans})",
                              architecture=f"timm architecture ('{name}')")
        self.name = name
        self.out_channels: list[int] = list(self.model.feature_info.channels())
        self.reductions: list[int] = list(self.model.feature_info.reduction())
        self.spec: dict = {"name": name, "in_chans": in_chans}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model(x)


def _register(name: str) -> None:
    def factory(*, in_chans: int = 1, weights: str | None = None, img_size: int | None = None) -> TimmEncoder:
        return TimmEncoder(name, in_chans=in_chans, weights=weights)  # a CNN works at any size: img_size is ignored

    factory.__name__ = name
    factory.__qualname__ = name
    factory.__doc__ = (f"timm {name}: 5 feature maps at strides 2-32, any input size (img_size is ignored); "
                       f"weights: a local timm/ImageNet file.")
    ENCODERS.register(name, init_only=("weights",))(factory)


for _name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet10t"):
    _register(_name)
