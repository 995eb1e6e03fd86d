"""Gaussian point-spread-function blur: anisotropic, per-sample sigmas, optionally depth-varying.

``h(z, x) = g_{σ_ax}(z) g_{σ_lat}(x)``, ``g_σ(t) ∝ exp(-t² / 2σ²)`` normalised to sum 1, applied as two
1-D convolutions with per-sample kernels (one grouped conv per axis for the whole batch). The depth-varying
lateral PSF ``σ_lat(t) = σ_lat · (1 + (f - 1) t)`` is done by PSF interpolation (Nagy & O'Leary 1998); see
:func:`psf_blur` and the :mod:`sonokit.physics.degrade` docstring.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import RandomDegradation, check_image, check_range, uniform

PADDINGS = ("reflect", "replicate", "circular")


def gaussian_kernels1d(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Normalised 1-D Gaussian kernels, one per sigma: (N,) pixels -> (N, 2 * radius + 1), rows sum to 1.

    ``sigma = 0`` gives the identity (a unit impulse).
    """
    t = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)  # (K,)
    s = sigma.float().clamp_min(1e-6)[:, None]  # (N, 1)
    k = torch.exp(-0.5 * (t[None] / s) ** 2)  # (N, K)
    return k / k.sum(1, keepdim=True)


def kernel_radius(sigma_max: float, *, truncate: float = 4.0) -> int:
    """Half-width in pixels of a Gaussian kernel truncated at ``truncate`` sigmas (at least 1)."""
    return max(1, int(math.ceil(truncate * float(sigma_max))))


def conv1d_per_sample(x: torch.Tensor, kernels: torch.Tensor, *, dim: int, padding: str = "reflect") -> torch.Tensor:
    """Convolve each image with its own 1-D kernel along ``dim`` (-2: axial/rows, -1: lateral/columns).

    ``x`` (N, 1, H, W), ``kernels`` (N, K) with K odd -> (N, 1, H, W). One grouped conv for the batch.
    """
    N, _, H, W = x.shape
    r = kernels.shape[1] // 2
    size = H if dim == -2 else W
    if padding in ("reflect", "circular") and r >= size:
        raise ValueError(f"blur kernel half-width {r} px needs an image side > {r} for padding='{padding}', "
                         f"found {size}; use padding='replicate' or smaller sigmas")
    pad = (0, 0, r, r) if dim == -2 else (r, r, 0, 0)
    w = kernels.to(x.dtype)[:, None, :, None] if dim == -2 else kernels.to(x.dtype)[:, None, None, :]
    xp = F.pad(x.reshape(1, N, H, W), pad, mode=padding)  # (1, N, H + 2r, W) or (1, N, H, W + 2r)
    # symmetric kernels: correlation == convolution
    return F.conv2d(xp, w, groups=N).reshape(N, 1, H, W)


def psf_blur(x: torch.Tensor, *, axial_sigma: torch.Tensor, lateral_sigma: torch.Tensor,
             depth_factor: torch.Tensor | None = None, depth_nodes: int = 4, padding: str = "reflect",
             truncate: float = 4.0) -> torch.Tensor:
    """Anisotropic (optionally depth-varying) Gaussian PSF blur.

    Args:
        x: (B, 1, H, W) image.
        axial_sigma, lateral_sigma: (B,) PSF standard deviations in pixels, along depth (rows) and
            laterally (columns), at the top of the image.
        depth_factor: (B,) ratio ``f`` of the lateral sigma at the bottom row to that at the top row
            (``σ_lat(t) = σ_lat (1 + (f - 1) t)``, ``t = row / (H - 1)``); ``None`` or all ones: no depth
            variation.
        depth_nodes: number of depths at which the lateral PSF is evaluated and blended (>= 2).
        padding: border handling, one of ``reflect``, ``replicate``, ``circular``.
        truncate: kernel half-width in sigmas.

    Returns:
        (B, 1, H, W) blurred image; every kernel sums to 1, so the mean is preserved (exactly with
        circular padding, up to border effects otherwise).
    """
    check_image(x, where="psf_blur input")
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {list(PADDINGS)}, found {padding!r}")
    B, _, H, W = x.shape
    dev = x.device
    ax = axial_sigma.to(dev).float()
    lat = lateral_sigma.to(dev).float()
    if ax.shape != (B,) or lat.shape != (B,):
        raise ValueError(f"axial_sigma and lateral_sigma must be ({B},), found {tuple(ax.shape)} and {tuple(lat.shape)}")
    if bool((ax < 0).any()) or bool((lat < 0).any()):
        raise ValueError(f"PSF sigmas must be >= 0, found axial min {float(ax.min())}, lateral min {float(lat.min())}")
    y = conv1d_per_sample(x, gaussian_kernels1d(ax, kernel_radius(float(ax.max()), truncate=truncate)),
                          dim=-2, padding=padding)  # (B, 1, H, W)
    if depth_factor is None or bool((depth_factor == 1).all()) or H == 1:
        return conv1d_per_sample(y, gaussian_kernels1d(lat, kernel_radius(float(lat.max()), truncate=truncate)),
                                 dim=-1, padding=padding)
    if depth_nodes < 2:
        raise ValueError(f"depth_nodes must be >= 2 for a depth-varying PSF, found {depth_nodes}")
    f = depth_factor.to(dev).float()
    if f.shape != (B,) or bool((f <= 0).any()):
        raise ValueError(f"depth_factor must be ({B},) and > 0, found shape {tuple(f.shape)}, min {float(f.min())}")
    L = depth_nodes
    tk = torch.linspace(0, 1, L, device=dev)  # (L,) node depths
    lat_k = lat[:, None] * (1 + (f[:, None] - 1) * tk[None])  # (B, L) lateral sigma at each node
    kern = gaussian_kernels1d(lat_k.reshape(-1), kernel_radius(float(lat_k.max()), truncate=truncate))  # (B*L, K)
    yk = conv1d_per_sample(y.repeat_interleave(L, 0), kern, dim=-1, padding=padding).reshape(B, L, H, W)
    t = torch.linspace(0, 1, H, device=dev)  # (H,) normalised depth of each row
    w = (1 - (t[None] - tk[:, None]).abs() * (L - 1)).clamp_min(0)  # (L, H) hat weights, sum_k w = 1 per row
    return (yk * w[None, :, :, None].to(yk.dtype)).sum(1, keepdim=True)  # (B, 1, H, W)


def _to_pixels(rng: tuple[float, float], pixel_mm: float | None) -> tuple[float, float]:
    return rng if pixel_mm is None else (rng[0] / pixel_mm, rng[1] / pixel_mm)


@dataclass
class GaussianPSFBlur(RandomDegradation):
    """Random anisotropic Gaussian PSF blur, per-sample sigmas (see :func:`psf_blur`).

    Args:
        axial_sigma: (min, max) PSF sigma along depth (rows), in pixels, or in mm when ``pixel_mm`` is set.
        lateral_sigma: (min, max) PSF sigma laterally (columns), in pixels or mm.
        depth_factor: (min, max) growth factor of the lateral sigma from the top to the bottom row
            ((1, 1): depth-invariant PSF; e.g. (1, 2): up to twice as wide in the far field).
        depth_nodes: number of depths at which the depth-varying PSF is evaluated and blended.
        pixel_mm: pixel size in mm, a float or (axial, lateral); ``None``: sigmas are in pixels.
        padding: ``reflect`` | ``replicate`` | ``circular``.
    """

    axial_sigma: tuple[float, float] = (0.5, 2.0)
    lateral_sigma: tuple[float, float] = (0.5, 3.0)
    depth_factor: tuple[float, float] = (1.0, 1.0)
    depth_nodes: int = 4
    pixel_mm: float | tuple[float, float] | None = None
    padding: str = "reflect"

    def __post_init__(self) -> None:
        check_range("axial_sigma", self.axial_sigma)
        check_range("lateral_sigma", self.lateral_sigma)
        check_range("depth_factor", self.depth_factor, strict=True)
        if self.depth_nodes < 2:
            raise ValueError(f"depth_nodes must be >= 2, found {self.depth_nodes}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {list(PADDINGS)}, found {self.padding!r}")
        if self.pixel_mm is not None:
            pm = self.pixel_mm if isinstance(self.pixel_mm, tuple) else (self.pixel_mm, self.pixel_mm)
            if len(pm) != 2 or not all(math.isfinite(p) and p > 0 for p in pm):
                raise ValueError(f"pixel_mm must be > 0 (a float or (axial, lateral)), found {self.pixel_mm}")

    def _pixel_mm(self) -> tuple[float | None, float | None]:
        if self.pixel_mm is None:
            return None, None
        return self.pixel_mm if isinstance(self.pixel_mm, tuple) else (self.pixel_mm, self.pixel_mm)

    def max_radius(self, *, truncate: float = 4.0) -> int:
        """Largest kernel half-width this blur can use, in pixels (the border a crop needs)."""
        pa, pl = self._pixel_mm()
        s = max(_to_pixels(self.axial_sigma, pa)[1], _to_pixels(self.lateral_sigma, pl)[1] * max(self.depth_factor))
        return kernel_radius(s, truncate=truncate)

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """(B,) sigmas in pixels and depth factors; the same generator state gives the same parameters."""
        g = generator
        pa, pl = self._pixel_mm()
        return {
            "axial_sigma": uniform(batch, *_to_pixels(self.axial_sigma, pa), g),
            "lateral_sigma": uniform(batch, *_to_pixels(self.lateral_sigma, pl), g),
            "depth_factor": uniform(batch, *self.depth_factor, g),
        }

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return psf_blur(x, axial_sigma=params["axial_sigma"], lateral_sigma=params["lateral_sigma"],
                        depth_factor=params["depth_factor"], depth_nodes=self.depth_nodes, padding=self.padding)
