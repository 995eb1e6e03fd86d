"""Necks: turn an encoder's maps into the maps a decoder needs; they expose ``out_channels`` and ``reductions``
like an encoder. A neck factory takes ``(in_channels, reductions, *, out_channels)``."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ...registry import Registry
from .pyramid import SimplePyramidNeck

NECKS: Registry[nn.Module] = Registry("neck")


@NECKS.register("pyramid")
def pyramid(in_channels: Sequence[int], reductions: Sequence[int], *, out_channels: int = 256) -> SimplePyramidNeck:
    """ViTDet's simple pyramid (Li et al. 2022): stride-16 ViT maps -> strides 4, 8, 16, 32."""
    return SimplePyramidNeck(list(in_channels), list(reductions), out_channels=out_channels)


__all__ = ["NECKS", "SimplePyramidNeck"]
