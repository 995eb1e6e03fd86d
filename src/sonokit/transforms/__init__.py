"""Tensor transforms with explicit, replayable random parameters."""
from .augment import SegAugment

__all__ = ["SegAugment"]
