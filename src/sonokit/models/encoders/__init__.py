"""Encoders: ``forward(x) -> list of feature maps`` (shallow to deep), ``out_channels``, ``reductions``, ``spec``.

The interface every registered encoder keeps (smp's), so any encoder fits any decoder and any SSL method:

- ``forward(x: (B, in_chans, H, W)) -> [f_0, ..., f_n]``, ``f_i`` of shape (B, out_channels[i], H / r_i, W / r_i);
- ``out_channels: list[int]`` and ``reductions: list[int]`` (the stride ``r_i`` of each map);
- ``spec: dict``: the registry name plus the keyword arguments that rebuild the encoder without weight files,
  e.g. ``{"name": "vit_tiny_patch16", "img_size": 128, "in_chans": 1, ...}``.

Every factory takes ``in_chans``, ``weights`` (a local timm-format file, never downloaded; registered as
``init_only``) and ``img_size`` (CNNs accept and ignore it: they work at any input size), and has an explicit
keyword signature so :meth:`ENCODERS.check_kwargs <sonokit.registry.Registry.check_kwargs>` can check a config.
"""
from __future__ import annotations

from torch import nn

from ...registry import Registry

ENCODERS: Registry[nn.Module] = Registry("encoder")

# the variant modules register themselves into ENCODERS (defined above, before they import it)
from . import timm_cnn, vit  # noqa: F401
from .checkpoint import load_encoder_checkpoint
from .timm_cnn import TimmEncoder
from .vit import ViTEncoder


def create_encoder(name: str, **kw) -> nn.Module:
    """Create a registered encoder, e.g. ``create_encoder("vit_small_patch16", img_size=128)``."""
    return ENCODERS.create(name, **kw)


def list_encoders(pattern: str = "*") -> list[str]:
    return ENCODERS.list(pattern)


__all__ = ["ENCODERS", "TimmEncoder", "ViTEncoder", "create_encoder", "list_encoders", "load_encoder_checkpoint"]
