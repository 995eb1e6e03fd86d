"""Decoders: ``forward(features, input_size) -> (B, out_channels, h, w)`` over any encoder's feature maps.

A decoder factory takes ``(encoder_channels, reductions, **its own keyword arguments)``. Its output may be below
input resolution (UPerNet: the finest feature's stride); the segmentation model then upsamples the logits.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ...registry import Registry
from .unet import UNetDecoder
from .upernet import UPerNetDecoder

DECODERS: Registry[nn.Module] = Registry("decoder")


@DECODERS.register("unet")
def unet(encoder_channels: Sequence[int], reductions: Sequence[int], *,
         decoder_channels: Sequence[int] = (256, 128, 64, 32, 16)) -> UNetDecoder:
    """U-Net (Ronneberger et al. 2015): one upsample + skip + two 3x3 conv blocks per level, to full resolution."""
    return UNetDecoder(list(encoder_channels), list(reductions), decoder_channels)


@DECODERS.register("upernet")
def upernet(encoder_channels: Sequence[int], reductions: Sequence[int], *, channels: int = 256,
            pool_scales: Sequence[int] = (1, 2, 3, 6), levels: int | None = 4) -> UPerNetDecoder:
    """UPerNet (Xiao et al. 2018): pyramid pooling + FPN, fused at the finest stride (output at stride 4)."""
    return UPerNetDecoder(list(encoder_channels), list(reductions), channels=channels, pool_scales=pool_scales,
                          levels=levels)


__all__ = ["DECODERS", "UNetDecoder", "UPerNetDecoder"]
