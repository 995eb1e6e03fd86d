"""Segmentation models: encoder -> decoder -> head (smp's composition), and the model registry."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..registry import Registry
from .decoders import UNetDecoder
from .encoders import create_encoder

MODELS: Registry[nn.Module] = Registry("model")


class SegmentationModel(nn.Module):
    """encoder -> decoder -> 3x3 conv head producing ``num_classes`` logits at input resolution.

    Input (B, in_chans, H, W) in [0, 1]; output logits (B, num_classes, H, W). H and W need not be
    multiples of 32 (the decoder resizes to each skip's size).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, num_classes: int = 1) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.head = nn.Conv2d(decoder.out_channels, num_classes, 3, padding=1)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected input of shape (B, C, H, W), found {tuple(x.shape)}")
        feats = self.encoder(x)
        return self.head(self.decoder(feats, x.shape[-2:]))


def load_encoder_checkpoint(encoder: nn.Module, path: str | Path) -> None:
    """Load encoder weights saved by sonokit (``sonokit pretrain``) or a plain state dict for this encoder.

    Accepts ``.safetensors`` or torch files holding either the state dict itself or
    ``{"encoder": state_dict}`` / ``{"state_dict": {"encoder.*": ...}}``. Keys must match exactly.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"encoder checkpoint '{p}' does not exist")
    if p.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(p), "pt") as fh:
            meta = fh.metadata() or {}
        want = getattr(encoder, "name", None)
        if meta.get("encoder") and want and meta["encoder"] != want:
            raise CheckpointError(f"encoder checkpoint '{p}' holds a '{meta['encoder']}' encoder (pretrained with "
                                  f"{meta.get('method', '?')}), but the model's encoder is '{want}'; choose the "
                                  f"model resunet_{meta['encoder']}")
        sd = load_file(str(p))
    else:
        obj = torch.load(p, map_location="cpu", weights_only=False)
        sd = obj.get("encoder", obj.get("state_dict", obj)) if isinstance(obj, dict) else obj
    if any(k.startswith("encoder.") for k in sd):
        sd = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
    own = encoder.state_dict()
    wrong = [k for k, v in sd.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if wrong:
        raise CheckpointError(
            f"encoder checkpoint '{p}' does not fit encoder '{getattr(encoder, 'name', type(encoder).__name__)}': "
            f"{len(wrong)} tensors have other shapes (e.g. {wrong[0]}: {tuple(sd[wrong[0]].shape)} vs {tuple(own[wrong[0]].shape)})"
        )
    missing, unexpected = encoder.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"encoder checkpoint '{p}' does not fit encoder '{getattr(encoder, 'name', type(encoder).__name__)}': "
            f"{len(missing)} missing keys (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )


def resunet(encoder: str, *, in_chans: int = 1, num_classes: int = 1, encoder_weights: str | None = None,
            encoder_checkpoint: str | None = None, decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)) -> SegmentationModel:
    """Res-UNet: a timm ResNet encoder + U-Net decoder + head (the segmentation network of Ellis et al. 2025)."""
    enc = create_encoder(encoder, in_chans=in_chans, weights=encoder_weights)
    if encoder_checkpoint:
        load_encoder_checkpoint(enc, encoder_checkpoint)
    dec = UNetDecoder(enc.out_channels, enc.reductions, tuple(decoder_channels))
    return SegmentationModel(enc, dec, num_classes=num_classes)


def _register_resunet(enc: str) -> None:
    @MODELS.register(f"resunet_{enc}")
    def _factory(**kw) -> SegmentationModel:
        return resunet(enc, **kw)


for _enc in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet10t"):
    _register_resunet(_enc)


def create_model(name: str, **kwargs) -> nn.Module:
    """Create a registered model by name, e.g. ``create_model("resunet_resnet50", encoder_weights="r50.pth")``."""
    return MODELS.create(name, **kwargs)


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.list(pattern)
