"""Small building blocks shared by decoders, necks and the models that run an encoder."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


class ConvBNReLU(nn.Sequential):
    """``kernel_size`` conv (no bias, 'same' padding) -> BatchNorm -> ReLU; (B, cin, H, W) -> (B, cout, H, W)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def check_channels(value: object, what: str, *, min_len: int = 1) -> list[int]:
    """A list/tuple of positive ints (YAML gives lists) -> ``list[int]``, or a ConfigError naming ``what``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or len(value) < min_len \
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
        raise ConfigError(f"{what} must be a list of at least {min_len} positive integers; found {value!r}")
    return list(value)


def reads_organ(encoder: nn.Module) -> bool:
    """Whether ``encoder`` takes the organ (an A-ViT with ACDT blocks: ``takes_organ``)."""
    return bool(getattr(encoder, "takes_organ", False))


def encode(encoder: nn.Module, x: torch.Tensor, organ: torch.Tensor | None = None):
    """``encoder(x, organ)`` for an encoder that reads the organ, else ``encoder(x)``."""
    return encoder(x, organ) if reads_organ(encoder) else encoder(x)


def check_positive(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive integer; found {value!r}")
    return value
