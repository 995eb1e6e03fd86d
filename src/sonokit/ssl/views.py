"""Pretext transformations ``t`` for PIRL-style learning, chosen by name (Ellis et al. 2025, Sec. III-A).

A pretext spec is a list of names applied in a fixed order — frequency band-stop first, then a jigsaw —
so ``["freq", "cross_jigsaw"]`` filters the spectrum and then builds the cross-patch jigsaw (the paper's
"Frequency Filter → Crop → Cross-Patch Jigsaw"):

* ``jigsaw``: all 36 patches of a 6x6 grid shuffled (PIRL's pretext task, with the paper's grid);
* ``cross_jigsaw``: the cross-patch jigsaw (focal row + column kept, weakly augmented);
* ``freq``: random circular or X-shaped band-stop on the image spectrum.

The transformed view is reassembled into one image of the input size and passed through the encoder as a
whole. (PIRL encodes each patch separately; Ellis et al.'s perceptual loss compares the feature maps of the
two views, which needs the transformed view as one image, and 36 encoder passes per image would make
pretraining ~36x slower on a CPU.)
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from ..transforms.frequency import FrequencyBandStop
from ..transforms.jigsaw import CrossPatchJigsaw, Jigsaw

PRETEXTS = ("freq", "jigsaw", "cross_jigsaw")


def parse_pretext(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"freq+cross_jigsaw"`` or ``["freq", "cross_jigsaw"]`` -> ordered, validated names."""
    names = [s.strip() for s in (spec.split("+") if isinstance(spec, str) else spec) if s.strip()]
    if not names:
        raise ConfigError(f"empty pretext transform; choose from {', '.join(PRETEXTS)} (combine with '+')")
    bad = [n for n in names if n not in PRETEXTS]
    if bad:
        raise ConfigError(f"unknown pretext transform {bad}; choose from {', '.join(PRETEXTS)} (combine with '+')")
    if "jigsaw" in names and "cross_jigsaw" in names:
        raise ConfigError("choose one of 'jigsaw' and 'cross_jigsaw', not both")
    if len(set(names)) != len(names):
        raise ConfigError(f"pretext transform {names} names a transform twice")
    return tuple(n for n in PRETEXTS if n in names)


class PretextTransform:
    """Apply the named pretext transformations to a batch (B, C, H, W) with a replayable generator."""

    def __init__(self, spec: str | list[str], *, grid: int = 6, freq: dict | None = None) -> None:
        self.names = parse_pretext(spec)
        try:
            self.freq = (FrequencyBandStop(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in (freq or {}).items()})
                         if "freq" in self.names else None)
            jig = {"jigsaw": Jigsaw, "cross_jigsaw": CrossPatchJigsaw}
            self.jigsaw = next((jig[n](grid=grid) for n in self.names if n in jig), None)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.grid = grid

    def check_size(self, size: int) -> None:
        if self.jigsaw is not None and size % self.grid:
            raise ConfigError(f"a {self.grid}x{self.grid} jigsaw grid does not divide the {size}px pretraining image; "
                              f"use an image size that is a multiple of {self.grid} (e.g. {self.grid * round(size / self.grid)})")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.freq is not None:
            x = self.freq(x, generator)
        if self.jigsaw is not None:
            x = self.jigsaw(x, generator)
        return x

    def __repr__(self) -> str:
        return "+".join(self.names)
