"""Encoders: ``forward(x) -> list of feature maps`` (shallow to deep) and ``out_channels`` / ``reductions``.

Any registered encoder fits any decoder (smp's interface), so SSL-pretrained encoders drop in.
"""
from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from ...errors import CheckpointError
from ...registry import Registry

ENCODERS: Registry[nn.Module] = Registry("encoder")


class TimmEncoder(nn.Module):
    """A timm CNN as a multi-scale feature extractor (``features_only``).

    Args:
        name: timm model name (e.g. ``"resnet50"``).
        in_chans: input channels (1 for B-mode). ImageNet RGB stems are summed over colour (timm's
            ``adapt_input_conv``) when weights are loaded.
        weights: path to ImageNet (or other timm-format) weights: ``.pth``, ``.bin`` or ``.safetensors``.
            None means random initialisation; nothing is ever downloaded.
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

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model(x)


def _timm_encoder(name: str):
    def factory(**kw):
        return TimmEncoder(name, **kw)

    factory.__name__ = name
    return factory


for _name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet10t"):
    ENCODERS.register(_name)(_timm_encoder(_name))


def create_encoder(name: str, **kw) -> nn.Module:
    return ENCODERS.create(name, **kw)


def list_encoders(pattern: str = "*") -> list[str]:
    return ENCODERS.list(pattern)
