"""Segmentation models: encoder -> [neck] -> decoder -> head (smp's composition), and their registered factories.

Any encoder fits any decoder: a plain ViT (single-scale) gets ViTDet's simple pyramid neck so a multi-scale
decoder can use it; a decoder whose output is below input resolution (UPerNet) has its logits upsampled.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .builder import (
    INIT_ONLY,
    MODELS,
    build_encoder,
    build_neck,
    check_neck,
    single_scale,
)
from .decoders import DECODERS
from .layers import check_positive, encode, reads_organ


class SegmentationModel(nn.Module):
    """encoder -> neck (optional) -> decoder -> ``head_kernel_size`` conv head with ``num_classes`` logits.

    Input (B, in_chans, H, W) in [0, 1]; output logits (B, num_classes, H, W). H and W need not be multiples
    of 32 for a CNN encoder (the U-Net decoder resizes to each skip's size); a ViT needs multiples of 16. When
    the decoder's output is smaller than the input, the logits are upsampled bilinearly to (H, W).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, num_classes: int = 1, neck: nn.Module | None = None,
                 *, head_kernel_size: int = 3) -> None:
        super().__init__()
        self.encoder, self.neck, self.decoder = encoder, neck, decoder
        self.head = nn.Conv2d(decoder.out_channels, num_classes, head_kernel_size, padding=head_kernel_size // 2)
        self.num_classes = num_classes

    @property
    def batch_inputs(self) -> tuple[str, ...]:
        """Batch keys the model reads besides the image (training passes them)."""
        return ("organ",) if reads_organ(self.encoder) else ()

    def forward(self, x: torch.Tensor, organ: torch.Tensor | None = None) -> torch.Tensor:
        """``organ`` (B,) organ indices (-1 unknown) reach an encoder that ``takes_organ`` (A-ViT)."""
        if x.ndim != 4:
            raise ValueError(f"expected input of shape (B, C, H, W), found {tuple(x.shape)}")
        size = tuple(x.shape[-2:])
        feats = encode(self.encoder, x, organ)
        if self.neck is not None:
            feats = self.neck(feats)
        logits = self.head(self.decoder(feats, size))  # (B, num_classes, H / r, W / r), r >= 1
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits


def _check_common(num_classes: int, neck: str, neck_channels: int) -> None:
    check_positive(num_classes, "num_classes")
    check_neck(neck)
    check_positive(neck_channels, "neck_channels")


@MODELS.register("unet", init_only=INIT_ONLY)
def unet(encoder: str = "resnet18", *, in_chans: int = 1, num_classes: int = 1, img_size: int | None = None,
         encoder_weights: str | None = None, encoder_checkpoint: str | None = None, encoder_kwargs: dict | None = None,
         decoder_channels: Sequence[int] = (256, 128, 64, 32, 16), neck: str = "auto",
         neck_channels: int = 256) -> SegmentationModel:
    """U-Net decoder on any encoder (Ronneberger et al. 2015; a plain ViT gets the simple pyramid neck).

    Args:
        encoder: a registered encoder (``sonokit.models.list_encoders()``).
        in_chans, img_size: input channels and training size (passed to encoders that take ``img_size``).
        encoder_weights: a local timm-format file (e.g. ImageNet weights) for the encoder; nothing is downloaded.
        encoder_checkpoint: a sonokit encoder file (``sonokit pretrain``), loaded after ``encoder_weights``.
        encoder_kwargs: further encoder arguments (e.g. ``{"out_indices": [3, 5, 7, 11]}`` for a ViT).
        decoder_channels: width of each decoder block, deep to shallow (extra entries are ignored).
        neck: ``"auto"`` (the pyramid for a single-scale encoder, else none), ``"pyramid"`` or ``"none"``.
        neck_channels: the neck's output width.
    """
    _check_common(num_classes, neck, neck_channels)
    enc = build_encoder(encoder, in_chans=in_chans, img_size=img_size, weights=encoder_weights,
                        checkpoint=encoder_checkpoint, encoder_kwargs=encoder_kwargs)
    nk = build_neck(neck, enc, neck_channels)
    src = nk if nk is not None else enc
    if single_scale(src) and len(src.reductions) > 1:
        raise ConfigError(f"model 'unet' needs feature maps at several strides, but encoder '{encoder}' gives "
                          f"{len(src.reductions)} maps all at stride {src.reductions[0]}; use neck 'pyramid' "
                          f"(or 'auto'), not '{neck}'")
    dec = DECODERS.create("unet", encoder_channels=src.out_channels, reductions=src.reductions,
                          decoder_channels=decoder_channels)
    return SegmentationModel(enc, dec, num_classes=num_classes, neck=nk)


@MODELS.register("upernet", init_only=INIT_ONLY)
def upernet(encoder: str = "resnet18", *, in_chans: int = 1, num_classes: int = 1, img_size: int | None = None,
            encoder_weights: str | None = None, encoder_checkpoint: str | None = None,
            encoder_kwargs: dict | None = None, channels: int = 256, pool_scales: Sequence[int] = (1, 2, 3, 6),
            neck: str = "auto", neck_channels: int = 256) -> SegmentationModel:
    """UPerNet decoder on any encoder (Xiao et al. 2018; a plain ViT gets the simple pyramid neck).

    Args: as :func:`unet`, plus ``channels`` (the width of every PPM / FPN conv) and ``pool_scales`` (the pyramid
    pooling grid sizes). Logits are computed at stride 4 (1x1 conv head) and upsampled to the input size.
    """
    _check_common(num_classes, neck, neck_channels)
    enc = build_encoder(encoder, in_chans=in_chans, img_size=img_size, weights=encoder_weights,
                        checkpoint=encoder_checkpoint, encoder_kwargs=encoder_kwargs)
    nk = build_neck(neck, enc, neck_channels)
    src = nk if nk is not None else enc
    dec = DECODERS.create("upernet", encoder_channels=src.out_channels, reductions=src.reductions,
                          channels=channels, pool_scales=pool_scales)
    return SegmentationModel(enc, dec, num_classes=num_classes, neck=nk, head_kernel_size=1)


def _register_resunet(encoder: str) -> None:
    """``resunet_<encoder>``: exactly :func:`unet` with the encoder fixed (and no ``encoder`` parameter)."""
    def factory(**kw) -> SegmentationModel:
        return unet(encoder, **kw)

    sig = inspect.signature(unet)
    factory.__signature__ = sig.replace(parameters=[p for p in sig.parameters.values() if p.name != "encoder"])
    factory.__name__ = factory.__qualname__ = f"resunet_{encoder}"
    factory.__doc__ = (f"Res-UNet: timm {encoder} encoder + U-Net decoder (Ellis et al. 2025's network).\n\n"
                       f"Exactly ``unet(encoder='{encoder}', ...)``; see :func:`unet` for the arguments.")
    MODELS.register(f"resunet_{encoder}", init_only=INIT_ONLY)(factory)


for _enc in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet10t"):
    _register_resunet(_enc)
