"""What every degradation shares: the operator protocol, input and option checks, and replayable draws.

An operator draws all its random choices with ``sample(batch, generator)`` and applies them with the
deterministic ``apply(x, params)``; noise fields are re-drawn in ``apply`` from a generator on ``x``'s
device seeded by ``params["seed"]`` (:func:`device_generator`), so a replay is bit-identical.
"""
from __future__ import annotations

import math
from typing import Protocol

import torch


class Degradation(Protocol):
    """A replayable random degradation: ``apply(x, sample(x.shape[0], generator))``."""

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]: ...
    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor: ...


class RandomDegradation:
    """Mixin for the operators: ``op(x, generator)`` samples parameters for the batch and applies them."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0], generator))


def check_image(x: torch.Tensor, *, where: str = "image") -> None:
    """Raise ``ValueError`` unless ``x`` is a finite float tensor of shape (B, 1, H, W)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor of shape (B, 1, H, W), found {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{where}: expected shape (B, 1, H, W), found {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{where}: expected a floating-point image in [0, 1], found dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{where}: expected finite pixels, found {bad} NaN/Inf value(s)")


def check_range(name: str, value: tuple[float, float], *, low: float = 0.0, strict: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a (min, max) pair with ``low <= min <= max`` (``low < min``
    when ``strict``); ``name`` is the option named in the message."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair of numbers, found {value!r}") from None
    ok_low = lo > low if strict else lo >= low
    if not (math.isfinite(lo) and math.isfinite(hi) and ok_low and lo <= hi):
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be (min, max) with min {rel} {low} and min <= max, found ({lo}, {hi})")


def uniform(batch: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    """(batch,) float32 values drawn uniformly in [lo, hi) from the CPU generator ``g``."""
    return lo + (hi - lo) * torch.rand(batch, generator=g)


def draw_seed(g: torch.Generator) -> torch.Tensor:
    """A (1,) seed in [0, 2³¹ - 1) for the noise field of one call (see :func:`device_generator`)."""
    return torch.randint(0, 2**31 - 1, (1,), generator=g)


def device_generator(seed: torch.Tensor | int, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``: noise fields replay exactly on the same device."""
    return torch.Generator(device=device).manual_seed(int(seed))
