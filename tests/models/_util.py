"""Helpers shared by the model tests."""
from __future__ import annotations

import pytest
import torch

from sonokit.models import list_encoders

SLOW_ENCODERS = {"vit_large_patch16"}  # 300 M parameters: ~10 s to build on 2 CPU cores


def encoder_params() -> list:
    """Every registered encoder, the largest marked ``slow``."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_ENCODERS else n for n in list_encoders()]


def assert_every_param_gets_grad(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Forward, backward, and every trainable parameter receives a non-zero gradient; returns the output.

    timm zero-initialises each residual block's last BN scale, so the block's inner convolutions get their first
    gradient only after one step: take one SGD step, then check."""
    y = model(x)
    assert torch.isfinite(y).all()
    target = torch.randn_like(y)
    (y * target).sum().backward()
    torch.optim.SGD(model.parameters(), lr=0.01).step()
    model.zero_grad()
    y = model(x)
    assert torch.isfinite(y).all()
    (y * target).sum().backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing, missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    return y
