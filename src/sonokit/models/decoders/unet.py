"""U-Net decoder over any multi-scale encoder (Ronneberger et al. 2015; smp's layout)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ..layers import ConvBNReLU, check_channels


class DecoderBlock(nn.Module):
    """Upsample to the skip's size, concatenate the skip, two 3x3 conv-BN-ReLU."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(ConvBNReLU(cin + cskip, cout), ConvBNReLU(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        x = F.interpolate(x, size=size, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv(x)


class UNetDecoder(nn.Module):
    """Decode features ``[f_0 (stride r_0), ..., f_n (stride r_n)]`` (shallow to deep) to full resolution.

    One block per skip from deep to shallow, plus one final block without a skip when the shallowest
    feature is below input resolution (r_0 > 1). ``decoder_channels`` gives each block's width; it must
    have ``len(encoder_channels) - 1 + (r_0 > 1)`` entries (extra entries are ignored, missing ones are an error).

    Shapes: features (B, C_i, H / r_i, W / r_i) -> (B, decoder_channels[-1], H, W).
    """

    def __init__(self, encoder_channels: list[int], reductions: list[int],
                 decoder_channels: tuple[int, ...] | list[int] = (256, 128, 64, 32, 16)) -> None:
        super().__init__()
        decoder_channels = check_channels(decoder_channels, "decoder_channels")
        if len(encoder_channels) != len(reductions) or not encoder_channels:
            raise ConfigError(f"encoder_channels {list(encoder_channels)} and reductions {list(reductions)} must be "
                             f"non-empty lists of equal length")
        self.final_up = reductions[0] > 1
        skips = list(reversed(encoder_channels[:-1]))  # deep -> shallow
        n_blocks = len(skips) + int(self.final_up)
        if len(decoder_channels) < n_blocks:
            raise ConfigError(f"decoder_channels needs {n_blocks} entries for this encoder, "
                              f"found {len(decoder_channels)}")
        chans = list(decoder_channels[:n_blocks])
        cins = [encoder_channels[-1]] + chans[:-1]
        cskips = skips + ([0] if self.final_up else [])
        self.blocks = nn.ModuleList(DecoderBlock(ci, cs, co) for ci, cs, co in zip(cins, cskips, chans))
        self.out_channels = chans[-1]
        self.n_features = len(encoder_channels)

    def forward(self, features: list[torch.Tensor], input_size: tuple[int, int]) -> torch.Tensor:
        if len(features) != self.n_features:
            raise ValueError(f"UNetDecoder was built for {self.n_features} feature maps, found {len(features)}")
        x = features[-1]
        skips = list(reversed(features[:-1]))
        for k, block in enumerate(self.blocks):
            skip = skips[k] if k < len(skips) else None
            size = skip.shape[-2:] if skip is not None else input_size
            x = block(x, skip, tuple(size))
        return x
