"""Segmentation augmentation: one set of sampled parameters applied identically to image and mask."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import functional as TF


def _u(b: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(b, generator=g)


@dataclass
class SegAugment:
    """Flip, small affine and intensity augmentation, batched on tensors (CPU or GPU).

    Args:
        hflip: probability of a left-right flip (lateral axis; safe for B-mode).
        vflip: probability of an up-down flip (depth axis; off by default: it inverts acoustic shadowing).
        rotate: maximum rotation in degrees (uniform in [-rotate, rotate]).
        scale: (min, max) zoom factor.
        translate: maximum shift as a fraction of the image side.
        brightness: maximum additive intensity shift.
        contrast: maximum relative gain change.
        gamma: (min, max) gamma.
        noise: standard deviation of additive Gaussian noise (image only).
    """

    hflip: float = 0.5
    vflip: float = 0.0
    rotate: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.05
    brightness: float = 0.1
    contrast: float = 0.1
    gamma: tuple[float, float] = (0.8, 1.2)
    noise: float = 0.0

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip"):
            p = getattr(self, name)
            if not 0 <= p <= 1:
                raise ValueError(f"augment.{name} is a probability in [0, 1], found {p}")
        if self.rotate < 0 or self.translate < 0 or self.noise < 0 or self.brightness < 0 or self.contrast < 0:
            raise ValueError("augment.rotate, translate, noise, brightness and contrast must be >= 0")
        if not (0 < self.scale[0] <= self.scale[1]) or not (0 < self.gamma[0] <= self.gamma[1]):
            raise ValueError(f"augment.scale and gamma must be (min, max) with 0 < min <= max; found {self.scale}, {self.gamma}")

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Draw the parameters for a batch; replaying the same generator state gives the same parameters."""
        g = generator
        return {
            "hflip": torch.rand(batch, generator=g) < self.hflip,
            "vflip": torch.rand(batch, generator=g) < self.vflip,
            "angle": _u(batch, -self.rotate, self.rotate, g),
            "scale": _u(batch, *self.scale, g),
            "tx": _u(batch, -2 * self.translate, 2 * self.translate, g),
            "ty": _u(batch, -2 * self.translate, 2 * self.translate, g),
            "gain": _u(batch, 1 - self.contrast, 1 + self.contrast, g),
            "bias": _u(batch, -self.brightness, self.brightness, g),
            "gamma": _u(batch, *self.gamma, g),
            "noise_seed": torch.randint(0, 2**31 - 1, (1,), generator=g),
        }

    def apply(self, image: torch.Tensor, mask: torch.Tensor | None, params: dict[str, torch.Tensor]):
        """image (B, 1, H, W) in [0, 1], mask (B, 1, H, W) in {0, 1} -> augmented (image, mask)."""
        dev = image.device
        p = {k: v.to(dev) for k, v in params.items()}
        theta = TF.affine_matrices(p["angle"], p["scale"], p["tx"], p["ty"], p["hflip"], p["vflip"])
        image = TF.warp(image, theta, mode="bilinear")
        if mask is not None:
            mask = TF.warp(mask.float(), theta, mode="nearest")
        image = TF.adjust_intensity(image, p["gain"], p["bias"], p["gamma"])
        if self.noise > 0:
            g = torch.Generator(device=dev).manual_seed(int(params["noise_seed"].item()))
            image = (image + self.noise * torch.randn(image.shape, generator=g, device=dev)).clamp(0, 1)
        return image, mask

    def __call__(self, image, mask, generator: torch.Generator):
        return self.apply(image, mask, self.sample(image.shape[0], generator))
