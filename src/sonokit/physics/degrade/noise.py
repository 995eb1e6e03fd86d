"""Additive noise models: white Gaussian noise and a random Hermitian Fourier-spectrum perturbation."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import RandomDegradation, check_image, check_range, device_generator, draw_seed, uniform


def add_gaussian_noise(x: torch.Tensor, sigma: torch.Tensor, *, seed: int | torch.Tensor) -> torch.Tensor:
    """``y = x + σ_b ε``, ``ε ~ N(0, 1)`` i.i.d.: (B, 1, H, W), (B,) intensity units -> (B, 1, H, W)."""
    check_image(x, where="gaussian noise input")
    eps = torch.randn(x.shape, generator=device_generator(seed, x.device), device=x.device, dtype=x.dtype)
    return x + sigma.to(x.device, x.dtype)[:, None, None, None] * eps


@dataclass
class AdditiveGaussianNoise(RandomDegradation):
    """Additive white Gaussian noise with a per-sample std drawn uniformly in ``sigma`` (intensity units).

    Args:
        sigma: (min, max) noise standard deviation, in [0, 1] intensity units.
        clamp: clip the result to [0, 1] (off by default: clipping lowers the std near 0 and 1).
    """

    sigma: tuple[float, float] = (0.01, 0.1)
    clamp: bool = False

    def __post_init__(self) -> None:
        check_range("sigma", self.sigma)

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"sigma": uniform(batch, *self.sigma, generator), "seed": draw_seed(generator)}

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        y = add_gaussian_noise(x, params["sigma"], seed=params["seed"])
        return y.clamp(0, 1) if self.clamp else y


def hermitian_fields(shape: tuple[int, int, int, int], *, width: int, generator: torch.Generator,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard-normal fields on the rfft2 half-plane with the symmetry of a real image's spectrum.

    ``shape`` is the rfft2 shape (B, 1, H, W // 2 + 1) of an image of width ``width``. Returns
    ``(even, odd)``, each of that shape with unit variance, such that on the columns that are their own
    mirror (``kx = 0`` and, for even ``width``, ``kx = W / 2``): ``even(-ky) = even(ky)`` and
    ``odd(-ky) = -odd(ky)`` (so ``odd = 0`` on the self-conjugate bins, e.g. DC). Elsewhere the rfft
    half-plane stores each frequency once and the symmetry is implicit.
    """
    B, C, H, Wr = shape
    a = torch.randn(shape, generator=generator, device=device)
    b = torch.randn(shape, generator=generator, device=device)
    cols = [0] + ([width // 2] if width % 2 == 0 and width // 2 != 0 else [])
    mirror = (-torch.arange(H, device=device)) % H  # (H,) row index of -ky
    for c in cols:
        ac, bc = a[..., c], b[..., c]  # (B, C, H)
        self_mirror = (mirror == torch.arange(H, device=device))  # ky == -ky (mod H)
        even = torch.where(self_mirror, ac, (ac + ac[..., mirror]) / math.sqrt(2))
        odd = torch.where(self_mirror, torch.zeros_like(bc), (bc - bc[..., mirror]) / math.sqrt(2))
        a[..., c], b[..., c] = even, odd
    return a, b


def fourier_perturb(x: torch.Tensor, *, phase_std: torch.Tensor, magnitude_std: torch.Tensor,
                    seed: int | torch.Tensor, keep_dc: bool = True) -> torch.Tensor:
    """Random phase and log-normal magnitude perturbation of the image spectrum, real output.

    With ``X = F(x)`` the 2-D DFT of each (H, W) image and ``k`` a spatial frequency,

        Y(k) = X(k) · exp(σ_m ε(k)) · exp(i σ_φ η(k)),      y = F^{-1}(Y),

    ``ε, η ~ N(0, 1)`` with ``ε(-k) = ε(k)`` and ``η(-k) = -η(k)``. The perturbation
    ``P(k) = exp(σ_m ε(k) + i σ_φ η(k))`` is then Hermitian, ``P(-k) = conj P(k)``, so ``Y`` keeps the
    Hermitian symmetry of ``X`` and ``y`` is real; it is computed exactly on the rfft2 half-plane,
    ``y = irfft2(P ⊙ rfft2(x))`` (see :func:`hermitian_fields` for the self-conjugate columns). The magnitude
    factor is log-normal with median 1 (``σ_m`` is its log-std); the phase noise has std ``σ_φ`` radians.
    ``keep_dc`` leaves ``k = 0`` untouched (mean brightness preserved). ``σ_m = σ_φ = 0`` returns ``x``
    up to FFT round-off.

    Args: ``x`` (B, 1, H, W); ``phase_std``, ``magnitude_std`` (B,); ``seed`` of the noise fields.
    Returns: (B, 1, H, W) real tensor.
    """
    check_image(x, where="fourier perturbation input")
    B, C, H, W = x.shape
    dev = x.device
    X = torch.fft.rfft2(x.float())  # (B, 1, H, W // 2 + 1) complex
    eps, eta = hermitian_fields(tuple(X.shape), width=W, generator=device_generator(seed, dev), device=dev)
    sm = magnitude_std.to(dev).float()[:, None, None, None]
    sp = phase_std.to(dev).float()[:, None, None, None]
    P = torch.polar(torch.exp(sm * eps), sp * eta)  # (B, 1, H, W//2+1): Hermitian perturbation
    if keep_dc:
        P[..., 0, 0] = 1.0
    return torch.fft.irfft2(X * P, s=(H, W)).to(x.dtype)


@dataclass
class FourierPerturbation(RandomDegradation):
    """Random complex Fourier-domain perturbation (see :func:`fourier_perturb`).

    Args:
        phase_std: (min, max) std of the phase noise, radians.
        magnitude_std: (min, max) log-std of the multiplicative (log-normal, median 1) magnitude distortion.
        keep_dc: leave the DC coefficient (mean brightness) unchanged.
        clamp: clip the result to [0, 1].
    """

    phase_std: tuple[float, float] = (0.0, 0.3)
    magnitude_std: tuple[float, float] = (0.0, 0.3)
    keep_dc: bool = True
    clamp: bool = False

    def __post_init__(self) -> None:
        check_range("phase_std", self.phase_std)
        check_range("magnitude_std", self.magnitude_std)

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        g = generator
        return {"phase_std": uniform(batch, *self.phase_std, g),
                "magnitude_std": uniform(batch, *self.magnitude_std, g), "seed": draw_seed(g)}

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        y = fourier_perturb(x, phase_std=params["phase_std"], magnitude_std=params["magnitude_std"],
                            seed=params["seed"], keep_dc=self.keep_dc)
        return y.clamp(0, 1) if self.clamp else y
