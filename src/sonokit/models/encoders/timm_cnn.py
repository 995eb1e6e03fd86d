"""timm CNNs (ResNets) as multi-scale encoders: five feature maps at strides 2, 4, 8, 16, 32."""
from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from ...errors import CheckpointError
from . import ENCODERS


class TimmEncoder(nn.Module):
    """A timm CNN as a multi-scale feature extractor (``features_only``).

    Args:
        name: timm model name (e.g. ``"resnet50"``).
        in_chans: input channels (1 for B-mode). ImageNet RGB stems are summed over colour (timm's
            ``adapt_input_conv``) when weights are loaded.
        weights: path to ImageNet (or other timm-format) weights: ``.pth``, ``.bin`` or ``.safetensors``.
            None means random initialisation; nothing is ever downloaded.

    Shapes: (B, in_chans, H, W) -> [(B, out_channels[i], H / reductions[i], W / reductions[i])], any H, W
    (maps are rounded up at each stride). Weights live under ``model.*`` (timm's own key names).
    """

    def __init__(self, name: str, *, in_chans: int = 1, weights: str | Path | None = None) -> None:
        super().__init__()
        kw: dict = dict(features_only=True, in_chans=in_chans)
        if weights is not None:
            p = Path(weights)
            if not p.is_file():
                raise CheckpointError(f"encoder weights '{p}' do not exist; expected a .pth/.safetensors file for timm '{name}'")
            kw.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(p), num_classes=1000))
        try:
            self.model = timm.create_model(name, **kw)
        except RuntimeError as e:
            raise CheckpointError(f"weights '{weights}' do not fit timm model '{name}': {str(e)[:300]}") from None
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
