"""ViTDet's simple feature pyramid (Li et al. 2022, "Exploring Plain Vision Transformer Backbones for Object
Detection", Sec. 3 and Fig. 2): single-scale stride-16 maps -> strides 4, 8, 16, 32, so a plain ViT fits a
multi-scale decoder (U-Net, UPerNet).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from timm.layers import LayerNorm2d
from torch import nn

from ...errors import ConfigError
from ..layers import check_channels, check_positive

SCALES = (4.0, 2.0, 1.0, 0.5)  # upsampling factor of each output level, finest first


def _resample(dim: int, scale: float) -> tuple[nn.Module, int]:
    """The module that rescales a (B, dim, h, w) map by ``scale`` and its output channels (ViTDet's choices)."""
    if scale == 4.0:  # deconv 2x, LN, GELU, deconv 2x: (B, dim, h, w) -> (B, dim / 4, 4h, 4w)
        return nn.Sequential(nn.ConvTranspose2d(dim, dim // 2, 2, stride=2), LayerNorm2d(dim // 2), nn.GELU(),
                             nn.ConvTranspose2d(dim // 2, dim // 4, 2, stride=2)), dim // 4
    if scale == 2.0:  # (B, dim, h, w) -> (B, dim / 2, 2h, 2w)
        return nn.ConvTranspose2d(dim, dim // 2, 2, stride=2), dim // 2
    if scale == 1.0:
        return nn.Identity(), dim
    if scale == 0.5:  # (B, dim, h, w) -> (B, dim, ceil(h / 2), ceil(w / 2))
        return nn.MaxPool2d(2, stride=2, ceil_mode=True), dim
    raise ConfigError(f"pyramid scale {scale} is not one of {SCALES}")


class SimplePyramidNeck(nn.Module):
    """Build strides r/4, r/2, r, 2r (4, 8, 16, 32 for a patch-16 ViT) from maps that all have stride r.

    Each level: a resampling (see :func:`_resample`), then a 1x1 conv and a 3x3 conv to ``out_channels``, each
    followed by a LayerNorm over channels (ViTDet's ``norm="LN"``). With one input map every level is computed
    from it (ViTDet); with one map per level (a ViT's ``out_indices``) map i feeds level i, shallow blocks the
    fine levels (the multi-level variant of BEiT / UPerNet-on-ViT).

    Exposes ``out_channels`` (``[out_channels] * 4``) and ``reductions`` (``[r/4, r/2, r, 2r]``) like an encoder.

    Shapes: 1 or 4 maps (B, C_i, h, w) -> [(B, out_channels, 4h, 4w), (B, out_channels, 2h, 2w),
    (B, out_channels, h, w), (B, out_channels, ceil(h / 2), ceil(w / 2))].
    """

    def __init__(self, in_channels: Sequence[int], reductions: Sequence[int], *, out_channels: int = 256) -> None:
        super().__init__()
        in_channels = check_channels(in_channels, "in_channels")
        out_channels = check_positive(out_channels, "out_channels")
        if len(set(reductions)) != 1 or len(reductions) != len(in_channels):
            raise ConfigError(f"the simple pyramid needs maps that all have the same stride (a plain ViT); found "
                              f"strides {list(reductions)} for {len(in_channels)} maps")
        r = int(reductions[0])
        if r % 4:
            raise ConfigError(f"the simple pyramid builds strides r/4 ... 2r from stride r; r must be a multiple of 4, "
                              f"found {r}")
        if len(in_channels) not in (1, len(SCALES)):
            raise ConfigError(f"the simple pyramid takes 1 map (all levels from it) or {len(SCALES)} maps (one per "
                              f"level); found {len(in_channels)}: give the encoder 1 or {len(SCALES)} out_indices")
        dims = in_channels if len(in_channels) == len(SCALES) else in_channels * len(SCALES)
        levels = []
        for dim, scale in zip(dims, SCALES):
            resample, c = _resample(dim, scale)
            levels.append(nn.Sequential(OrderedDict(
                resample=resample,
                proj=nn.Sequential(nn.Conv2d(c, out_channels, 1, bias=False), LayerNorm2d(out_channels),
                                   nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                                   LayerNorm2d(out_channels)))))
        self.levels = nn.ModuleList(levels)
        self.n_inputs = len(in_channels)
        self.out_channels: list[int] = [out_channels] * len(SCALES)
        self.reductions: list[int] = [int(r / s) for s in SCALES]

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != self.n_inputs:
            raise ValueError(f"the pyramid neck was built for {self.n_inputs} maps, found {len(features)}")
        inputs = features if self.n_inputs == len(SCALES) else list(features) * len(SCALES)
        return [level(f) for level, f in zip(self.levels, inputs)]
