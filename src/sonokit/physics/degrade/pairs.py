"""Training pairs for blind enhancement: rotated crops of frames, PSF blur, then one random noise model."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .base import Degradation, check_image, uniform
from .noise import AdditiveGaussianNoise, FourierPerturbation
from .psf import GaussianPSFBlur

ROTATIONS = ("none", "quarter", "small", "both")


def extract_patches(frames: torch.Tensor, *, frame_index: torch.Tensor, center: torch.Tensor,
                    angle: torch.Tensor, patch: int) -> torch.Tensor:
    """Rotated square patches by bilinear sampling: frames (B, 1, H, W) -> (N, 1, patch, patch).

    ``frame_index`` (N,) which frame, ``center`` (N, 2) patch centre (row, col) in pixels, ``angle`` (N,)
    rotation in radians (counter-clockwise). With integer-aligned centres and angle 0 (or multiples of
    90°) the samples fall on pixel centres and the crop is exact up to float round-off.
    """
    B, _, H, W = frames.shape
    dev = frames.device
    u = torch.arange(patch, device=dev, dtype=torch.float32) - (patch - 1) / 2  # (p,) offsets from centre
    vv, uu = torch.meshgrid(u, u, indexing="ij")  # (p, p) row / col offsets
    ca, sa = torch.cos(angle.to(dev).float()), torch.sin(angle.to(dev).float())  # (N,)
    ctr = center.to(dev).float()
    rows = ctr[:, 0, None, None] + ca[:, None, None] * vv + sa[:, None, None] * uu  # (N, p, p)
    cols = ctr[:, 1, None, None] - sa[:, None, None] * vv + ca[:, None, None] * uu
    grid = torch.stack([2 * cols / max(W - 1, 1) - 1, 2 * rows / max(H - 1, 1) - 1], -1)  # (N, p, p, 2) in [-1, 1]
    src = frames[frame_index.to(dev)]  # (N, 1, H, W)
    return F.grid_sample(src, grid.to(frames.dtype), mode="bilinear", padding_mode="reflection", align_corners=True)


@dataclass
class PairSynthesizer:
    """Training pairs for blind enhancement: random rotated crops, then PSF blur and ONE random noise model.

    ``degraded = noise_j(blur(target))`` with ``j`` uniform over ``noises``; the blur comes after the
    rotation, so the PSF keeps its physical orientation (axial = rows) whatever the crop's rotation. To
    avoid padding artefacts, a crop larger by the blur's kernel half-width on each side is extracted,
    blurred and trimmed to ``patch``; the target is the same trimmed crop, unblurred. A depth-varying PSF
    varies over the rows of this crop (the frame depth of a rotated crop is not a row index).

    Args:
        patch: side of the square patches, pixels.
        blur: the PSF blur (``None``: no blur).
        noises: noise models; each patch gets exactly one, chosen uniformly (empty: no noise).
        rotation: ``none``; ``quarter`` (multiples of 90°); ``small`` (uniform in ±``max_angle``);
            ``both`` (a quarter turn plus a small angle).
        max_angle: largest small rotation, degrees (0 to 45).
        clamp: clip the degraded patch to [0, 1].
    """

    patch: int = 64
    blur: GaussianPSFBlur | None = field(default_factory=GaussianPSFBlur)
    noises: tuple[Degradation, ...] = field(default_factory=lambda: (AdditiveGaussianNoise(), FourierPerturbation()))
    rotation: str = "quarter"
    max_angle: float = 10.0
    clamp: bool = True

    def __post_init__(self) -> None:
        if self.patch < 2:
            raise ValueError(f"patch must be >= 2 pixels, found {self.patch}")
        if self.rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {list(ROTATIONS)}, found {self.rotation!r}")
        if not 0 <= self.max_angle <= 45:
            raise ValueError(f"max_angle must be in [0, 45] degrees, found {self.max_angle}")
        self.noises = tuple(self.noises)

    def _margin(self) -> int:
        return self.blur.max_radius() if self.blur is not None else 0

    def _half_extent(self) -> float:
        """Half of the frame extent a rotated (margin-padded) crop covers, from its centre, in pixels."""
        a = math.radians(self.max_angle) if self.rotation in ("small", "both") else 0.0
        return (self.patch + 2 * self._margin() - 1) / 2 * (math.cos(a) + math.sin(a))

    def sample(self, frame_shape: tuple[int, ...], generator: torch.Generator, *, n: int | None = None) -> dict:
        """Parameters for ``n`` patches (default: one per frame) from frames of shape (B, 1, H, W)."""
        if len(frame_shape) != 4 or frame_shape[1] != 1:
            raise ValueError(f"frames: expected shape (B, 1, H, W), found {tuple(frame_shape)}")
        B, _, H, W = frame_shape
        r = self._half_extent()
        if min(H, W) - 1 < 2 * r:
            raise ValueError(f"frames are {H}x{W} but a {self.patch}-pixel patch (plus a {self._margin()}-pixel blur "
                             f"margin) with rotation '{self.rotation}' needs at least {math.ceil(2 * r) + 1} "
                             f"pixels per side; use a smaller patch or blur, or larger frames")
        g = generator
        N = B if n is None else n
        if N < 1:
            raise ValueError(f"n must be >= 1, found {n}")
        frame_index = torch.arange(B) if n is None else torch.randint(0, B, (N,), generator=g)
        half = (self.patch - 1) / 2
        # the top-left corner is an integer so that unrotated crops are pixel-exact
        cy = uniform(N, r, H - 1 - r, g)
        cx = uniform(N, r, W - 1 - r, g)
        center = torch.stack([torch.round(cy - half) + half, torch.round(cx - half) + half], 1)  # (N, 2)
        quarter = torch.randint(0, 4, (N,), generator=g) if self.rotation in ("quarter", "both") else torch.zeros(N, dtype=torch.long)
        small = uniform(N, -self.max_angle, self.max_angle, g) if self.rotation in ("small", "both") else torch.zeros(N)
        params = {
            "frame_index": frame_index, "center": center,
            "angle": torch.deg2rad(small) + quarter * (math.pi / 2),
            "noise_index": torch.randint(0, max(len(self.noises), 1), (N,), generator=g),
            "blur": self.blur.sample(N, g) if self.blur is not None else {},
            "noises": [op.sample(N, g) for op in self.noises],
        }
        return params

    def apply(self, frames: torch.Tensor, params: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (B, 1, H, W) -> (degraded, target), each (N, 1, patch, patch)."""
        check_image(frames, where="frames")
        m, p = self._margin(), self.patch
        crop = extract_patches(frames, frame_index=params["frame_index"], center=params["center"],
                               angle=params["angle"], patch=p + 2 * m)  # (N, 1, p + 2m, p + 2m)
        target = crop[..., m:m + p, m:m + p]  # (N, 1, p, p)
        y = self.blur.apply(crop, params["blur"])[..., m:m + p, m:m + p] if self.blur is not None else target
        if self.noises:
            idx = params["noise_index"].to(y.device)[:, None, None, None]
            noisy = [op.apply(y, p) for op, p in zip(self.noises, params["noises"])]
            y = sum(torch.where(idx == j, nj, torch.zeros_like(nj)) for j, nj in enumerate(noisy))
        return (y.clamp(0, 1) if self.clamp else y), target

    def __call__(self, frames: torch.Tensor, generator: torch.Generator, *, n: int | None = None):
        return self.apply(frames, self.sample(tuple(frames.shape), generator, n=n))


def synthesize_pair(frame: torch.Tensor, *, patch: int = 64, generator: torch.Generator,
                    blur: GaussianPSFBlur | None = None, noise: tuple[Degradation, ...] = (),
                    rotation: str = "quarter", max_angle: float = 10.0, n: int | None = None,
                    clamp: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Functional form of :class:`PairSynthesizer`: ``(degraded, target)``, each (N, 1, patch, patch)."""
    if isinstance(frame, torch.Tensor) and frame.ndim == 2:
        frame = frame[None, None]  # (1, 1, H, W)
    synth = PairSynthesizer(patch=patch, blur=blur, noises=tuple(noise), rotation=rotation,
                            max_angle=max_angle, clamp=clamp)
    return synth(frame, generator, n=n)
