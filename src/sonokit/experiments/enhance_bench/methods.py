"""Restoration methods as the bench sees them (:class:`Method`) and the noise it restores them from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ...errors import ConfigError
from .config import NoiseSetting

RESERVED = ("input", "raw", "raw_resampled")  # names of the unprocessed baselines (:func:`identity`)


@dataclass
class Method:
    """A restoration method: (H, W) float [0, 1] -> (H, W) float [0, 1], at ``max_side`` pixel scale."""
    name: str
    kind: str  # network | classical | hybrid | identity
    fn: Callable[[np.ndarray], np.ndarray]
    max_side: int | None = None
    spec: dict = field(default_factory=dict)  # what the method is (checkpoint and its mtime, filter name): cache key


def identity(name: str, max_side: int | None = None) -> Method:
    """The unprocessed baseline (``input``, ``raw``; ``raw_resampled`` with a ``max_side``)."""
    return Method(name, "identity", lambda im: im, max_side, {"identity": True, **({"max_side": max_side} if max_side else {})})


def apply_at_scale(method: Method, image: np.ndarray) -> np.ndarray:
    """Run ``method`` at its pixel scale (:func:`sonokit.enhance.inference.at_scale` with its ``max_side``)."""
    from ...enhance.inference import at_scale

    return at_scale(method.fn, image, method.max_side)


def degrade_frame(ref: np.ndarray, setting: NoiseSetting, seed: int, *, dynamic_range_db: float) -> np.ndarray:
    """The noisy version of ``ref`` for one noise setting, reproducible from ``seed``; clipped to [0, 1]."""
    from ...physics.degrade import add_gaussian_noise, apply_speckle

    x = torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float32))[None, None]
    if setting.kind == "gaussian":
        y = add_gaussian_noise(x, torch.tensor([setting.level / 255.0]), seed=seed)
    elif setting.kind == "speckle":
        y = apply_speckle(x, m=torch.tensor([float(setting.level)]), seed=seed, dynamic_range_db=dynamic_range_db)
    else:
        raise ConfigError(f"noise kind must be gaussian or speckle, found '{setting.kind}'")
    return y.clamp(0, 1)[0, 0].numpy()


def setting_name(s: NoiseSetting) -> str:
    """The noise setting as the tables name it: ``gaussian σ=25/255``, ``speckle m=1``."""
    return f"gaussian σ={s.level:g}/255" if s.kind == "gaussian" else f"speckle m={s.level:g}"
