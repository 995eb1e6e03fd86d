"""A trained denoising network and NLLR + collaborative Wiener filtering, combined.

BM3D's second step (:func:`sonokit.enhance.nllr.collaborative_wiener`) filters the *noisy* image with
Wiener gains taken from a pilot estimate; the better the pilot, the better the result (on BUSI frames at
σ = 25/255 two thirds of ``nllr_wiener``'s gap to BM3D came from its NLLR pilot). A trained network and
NLLR make errors of different kinds (the network is trained on other images; NLLR only uses the image's
own self-similarity), so their blend is a better pilot than either:

    pilot = (1 - w) · NLLR(y) + w · net(y),        x̂ = Wiener(y | pilot)

with one NLLR pass and one Wiener pass in the settings of the classical ``nllr_wiener``
(:data:`sonokit.enhance.classical.NLLR_WIENER`). The network adds its own time (0.06 s for DRUNet-small on
a 256² frame on 2 CPU cores). The noise level is estimated from the image when not given (blind), as for
``nllr_wiener``. The network should be a denoiser trained for the noise at hand (e.g.
``configs/denoise_busi_drunet_cpu.yaml``); with a network that also deblurs, the Wiener step, which only
denoises, pulls the estimate back towards the blurred input.

``benchmarks/nllr_vs_bm3d.py`` compares it with the ``bm3d`` package (the weight ``w`` was chosen on frames
that benchmark leaves out); ``sonokit enhance --refine nllr-wiener`` and the enhance-bench's ``hybrids``
use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classical import NLLR_WIENER, as_image2d, nllr
from .inference import enhance_image, load_enhancer
from .models import Enhancer
from .nllr import GUIDE_WEIGHT


@dataclass
class GuidedNLLRWiener:
    """``GuidedNLLRWiener(net)(image, sigma=None)``: (H, W) float image in [0, 1] -> (H, W) float32 in [0, 1].

    Args:
        net: a trained enhancement network (:func:`sonokit.enhance.load_enhancer`), run on the image with
            :func:`sonokit.enhance.enhance_image` (``tile``, ``overlap``).
        guide_weight: its share ``w`` of the Wiener pilot, in [0, 1] (0: plain ``nllr_wiener``).
    """

    net: Enhancer
    guide_weight: float = GUIDE_WEIGHT
    tile: int = 256
    overlap: int = 64

    def __post_init__(self) -> None:
        if not 0 <= self.guide_weight <= 1:
            raise ValueError(f"guide_weight must be in [0, 1], found {self.guide_weight}")

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str = "cpu", **kw) -> "GuidedNLLRWiener":
        return cls(load_enhancer(path, device=device)[0], **kw)

    def __call__(self, image: np.ndarray, sigma: float | None = None) -> np.ndarray:
        x = as_image2d(image, "guided nllr_wiener")  # (H, W), finite
        guide = enhance_image(self.net, x, tile=self.tile, overlap=self.overlap)
        out = nllr(x, **{**NLLR_WIENER, "sigma": sigma, "guide": guide, "guide_weight": self.guide_weight})
        return np.clip(out, 0, 1).astype(np.float32)
