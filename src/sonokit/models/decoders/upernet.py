"""UPerNet decoder (Xiao et al. 2018, "Unified Perceptual Parsing for Scene Understanding"; mmseg's UPerHead).

A pyramid pooling module (PSPNet, Zhao et al. 2017) on the deepest map, an FPN (Lin et al. 2017: lateral
1x1 convs, top-down addition, 3x3 convs) over the others, and every level upsampled to the finest and fused
by a 3x3 conv. The output stays at the finest used stride (4 for a ResNet or a ViT with the pyramid neck);
the segmentation model upsamples its logits to the input size.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ..layers import ConvBNReLU, check_channels, check_positive


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(x, size=tuple(size), mode="bilinear",
                                                                      align_corners=False)


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling: average-pool to s x s for each s in ``pool_scales``, 1x1 conv-BN-ReLU,
    upsample back, concatenate with the input, 3x3 conv-BN-ReLU.

    Shapes: (B, cin, h, w) -> (B, channels, h, w).
    """

    def __init__(self, cin: int, channels: int, pool_scales: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.stages = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvBNReLU(cin, channels, 1))
                                    for s in pool_scales)
        self.bottleneck = ConvBNReLU(cin + len(pool_scales) * channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [_resize(stage(x), size) for stage in self.stages]  # each (B, channels, h, w)
        return self.bottleneck(torch.cat([x, *pooled], dim=1))


class UPerNetDecoder(nn.Module):
    """UPerNet over the deepest ``levels`` feature maps of any encoder (shallow to deep).

    Args:
        encoder_channels, reductions: the encoder's (or neck's) ``out_channels`` and ``reductions``.
        channels: width of every PPM / FPN conv and of the output.
        pool_scales: PPM output grid sizes (the paper's 1, 2, 3, 6).
        levels: how many of the deepest maps to use (4: UPerNet's C2-C5, i.e. a ResNet's strides 4-32 without its
            stride-2 stem map); None uses them all.

    Shapes: features (B, C_i, H / r_i, W / r_i) -> (B, channels, H / r, W / r), r the finest used stride
    (``self.reduction``).
    """

    def __init__(self, encoder_channels: Sequence[int], reductions: Sequence[int], *, channels: int = 256,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), levels: int | None = 4) -> None:
        super().__init__()
        if len(encoder_channels) != len(reductions) or not encoder_channels:
            raise ConfigError(f"encoder_channels {list(encoder_channels)} and reductions {list(reductions)} must be "
                              f"non-empty lists of equal length")
        channels = check_positive(channels, "channels")
        pool_scales = check_channels(pool_scales, "pool_scales")
        n = len(encoder_channels)
        use = n if levels is None else min(check_positive(levels, "levels"), n)
        self.first = n - use  # index of the finest map used
        chans = list(encoder_channels[self.first:])
        self.ppm = PyramidPooling(chans[-1], channels, pool_scales)
        self.lateral = nn.ModuleList(ConvBNReLU(c, channels, 1) for c in chans[:-1])
        self.fpn = nn.ModuleList(ConvBNReLU(channels, channels, 3) for _ in chans[:-1])
        self.fuse = ConvBNReLU(use * channels, channels, 3)
        self.out_channels = channels
        self.reduction = int(reductions[self.first])
        self.n_features = n

    def forward(self, features: list[torch.Tensor], input_size: tuple[int, int] | None = None) -> torch.Tensor:
        if len(features) != self.n_features:
            raise ValueError(f"UPerNetDecoder was built for {self.n_features} feature maps, found {len(features)}")
        feats = features[self.first:]
        lat = [conv(f) for conv, f in zip(self.lateral, feats[:-1])] + [self.ppm(feats[-1])]  # (B, channels, h_i, w_i)
        for i in range(len(lat) - 1, 0, -1):  # top-down: add the upsampled deeper level
            lat[i - 1] = lat[i - 1] + _resize(lat[i], lat[i - 1].shape[-2:])
        outs = [conv(x) for conv, x in zip(self.fpn, lat[:-1])] + [lat[-1]]
        size = outs[0].shape[-2:]
        return self.fuse(torch.cat([_resize(o, size) for o in outs], dim=1))  # (B, channels, h_0, w_0)
