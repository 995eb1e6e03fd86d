"""Physics-guided image degradations for blind enhancement (Khan et al. 2026, arXiv 2601.21856).

Batched torch operators on B-mode images ``x`` of shape ``(B, 1, H, W)`` in [0, 1] (CPU or GPU); rows are
depth (axial), columns are lateral. Each operator follows the house style of replayable transforms
(:mod:`sonokit.transforms.frequency`): ``sample(batch, generator) -> params`` draws every random choice
from a ``torch.Generator``, ``apply(x, params)`` is deterministic, ``__call__(x, generator)`` does both.
Noise fields are drawn from a generator on ``x``'s device seeded by ``params["seed"]``, so a replay on the
same device is bit-identical (CPU and CUDA draw different fields from the same seed).

Operators (the math is in the pure functions; the dataclasses hold the option ranges):

* :class:`GaussianPSFBlur` / :func:`psf_blur` — anisotropic Gaussian point-spread function
  ``h(z, x) = g_{σ_ax}(z) g_{σ_lat}(x)``, ``g_σ(t) ∝ exp(-t² / 2σ²)`` normalised to sum 1 (so the mean
  intensity is preserved), applied as two 1-D convolutions with per-sample kernels (one grouped conv per
  axis for the whole batch). Optional depth-varying lateral blur: ``σ_lat(t) = σ_lat · (1 + (f - 1) t)``
  with ``t = z / (H - 1)`` the normalised depth and ``f`` the far-field growth factor. It is implemented
  by PSF interpolation (Nagy & O'Leary 1998): the image is blurred laterally with ``depth_nodes`` sigmas
  taken at equally spaced depths ``t_k`` and the results are blended row by row with linear
  (hat-function) weights in ``t``; the blending weights sum to 1 on every row, so a constant image stays
  constant. This is the usual cheap stand-in for a true space-varying convolution.
* :class:`AdditiveGaussianNoise` / :func:`add_gaussian_noise` — ``y = x + σ ε``, ``ε ~ N(0, 1)``.
* :class:`FourierPerturbation` / :func:`fourier_perturb` — complex spectrum perturbation, see there.
* :class:`MultiplicativeSpeckle` / :func:`apply_speckle` — ``y = x · n``, ``E[n] = 1``, Rayleigh or
  Nakagami-m, in the linear envelope domain.
* :class:`PairSynthesizer` / :func:`synthesize_pair` — crop + rotate patches from frames, then blur and ONE
  noise model chosen at random: returns ``(degraded, target)`` training pairs.

Why not DeepInverse: ``deepinv.physics.blur.gaussian_blur`` (0.5.x) builds ONE dense 2-D kernel from Python
float sigmas (size set by the largest sigma, rotated with torchvision), and ``deepinv.physics.Blur`` applies
a given kernel stack. Per-sample anisotropic sigmas would need a Python loop building ``B`` kernels, padding
them to a common size and a dense ``k × k`` convolution per sample, and it has no depth-varying PSF that
blends rows; the separable grouped convolution below does the batch in two small convolutions, with sigmas
as tensors sampled on any device, and adds no dependency.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F

PADDINGS = ("reflect", "replicate", "circular")
SPECKLE_KINDS = ("rayleigh", "nakagami")
ROTATIONS = ("none", "quarter", "small", "both")


# --------------------------------------------------------------------------------------------- checks
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


def _check_range(name: str, value: tuple[float, float], *, low: float = 0.0, strict: bool = False) -> None:
    """``value`` must be a (min, max) pair with ``low <= min <= max`` (``low < min`` when strict)."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair of numbers, found {value!r}") from None
    ok_low = lo > low if strict else lo >= low
    if not (math.isfinite(lo) and math.isfinite(hi) and ok_low and lo <= hi):
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be (min, max) with min {rel} {low} and min <= max, found ({lo}, {hi})")


def _uniform(batch: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(batch, generator=g)


def _seed(g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2**31 - 1, (1,), generator=g)


def _device_generator(seed: torch.Tensor | int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


# ----------------------------------------------------------------------------------------------- blur
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
class GaussianPSFBlur:
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
        _check_range("axial_sigma", self.axial_sigma)
        _check_range("lateral_sigma", self.lateral_sigma)
        _check_range("depth_factor", self.depth_factor, strict=True)
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
            "axial_sigma": _uniform(batch, *_to_pixels(self.axial_sigma, pa), g),
            "lateral_sigma": _uniform(batch, *_to_pixels(self.lateral_sigma, pl), g),
            "depth_factor": _uniform(batch, *self.depth_factor, g),
        }

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return psf_blur(x, axial_sigma=params["axial_sigma"], lateral_sigma=params["lateral_sigma"],
                        depth_factor=params["depth_factor"], depth_nodes=self.depth_nodes, padding=self.padding)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0], generator))


# ---------------------------------------------------------------------------------------------- noise
def add_gaussian_noise(x: torch.Tensor, sigma: torch.Tensor, *, seed: int | torch.Tensor) -> torch.Tensor:
    """``y = x + σ_b ε``, ``ε ~ N(0, 1)`` i.i.d.: (B, 1, H, W), (B,) intensity units -> (B, 1, H, W)."""
    check_image(x, where="gaussian noise input")
    eps = torch.randn(x.shape, generator=_device_generator(seed, x.device), device=x.device, dtype=x.dtype)
    return x + sigma.to(x.device, x.dtype)[:, None, None, None] * eps


@dataclass
class AdditiveGaussianNoise:
    """Additive white Gaussian noise with a per-sample std drawn uniformly in ``sigma`` (intensity units).

    Args:
        sigma: (min, max) noise standard deviation, in [0, 1] intensity units.
        clamp: clip the result to [0, 1] (off by default: clipping lowers the std near 0 and 1).
    """

    sigma: tuple[float, float] = (0.01, 0.1)
    clamp: bool = False

    def __post_init__(self) -> None:
        _check_range("sigma", self.sigma)

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"sigma": _uniform(batch, *self.sigma, generator), "seed": _seed(generator)}

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        y = add_gaussian_noise(x, params["sigma"], seed=params["seed"])
        return y.clamp(0, 1) if self.clamp else y

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0], generator))


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
    eps, eta = hermitian_fields(tuple(X.shape), width=W, generator=_device_generator(seed, dev), device=dev)
    sm = magnitude_std.to(dev).float()[:, None, None, None]
    sp = phase_std.to(dev).float()[:, None, None, None]
    P = torch.polar(torch.exp(sm * eps), sp * eta)  # (B, 1, H, W//2+1): Hermitian perturbation
    if keep_dc:
        P[..., 0, 0] = 1.0
    return torch.fft.irfft2(X * P, s=(H, W)).to(x.dtype)


@dataclass
class FourierPerturbation:
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
        _check_range("phase_std", self.phase_std)
        _check_range("magnitude_std", self.magnitude_std)

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        g = generator
        return {"phase_std": _uniform(batch, *self.phase_std, g),
                "magnitude_std": _uniform(batch, *self.magnitude_std, g), "seed": _seed(g)}

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        y = fourier_perturb(x, phase_std=params["phase_std"], magnitude_std=params["magnitude_std"],
                            seed=params["seed"], keep_dc=self.keep_dc)
        return y.clamp(0, 1) if self.clamp else y

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0], generator))


# -------------------------------------------------------------------------------------------- speckle
def standard_gamma(shape: torch.Size | tuple[int, ...], alpha: torch.Tensor, *, generator: torch.Generator,
                   trials: int = 8) -> torch.Tensor:
    """Gamma(alpha, 1) samples drawn from ``generator`` (``torch.distributions.Gamma`` takes no generator).

    Marsaglia & Tsang (2000), vectorised with ``trials`` proposals per value (acceptance >= 95 % each for
    alpha >= 1, so all fail with probability < 1e-10; the last proposal is then kept). alpha < 1 uses
    Gamma(alpha) = Gamma(alpha + 1) · U^(1/alpha). ``alpha`` broadcasts against ``shape``.
    """
    dev = generator.device
    a = alpha.to(dev).float().expand(shape)
    boost = a < 1
    d = torch.where(boost, a + 1, a) - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    z = torch.randn((trials, *shape), generator=generator, device=dev)
    u = torch.rand((trials, *shape), generator=generator, device=dev)
    v = (1 + c * z) ** 3
    ok = (v > 0) & (torch.log(u.clamp_min(1e-30)) < 0.5 * z**2 + d - d * v + d * torch.log(v.clamp_min(1e-30)))
    first = torch.where(ok.any(0), ok.float().argmax(0), torch.full(shape, trials - 1, device=dev))
    g = (d * v.clamp_min(1e-30)).gather(0, first[None]).squeeze(0)
    ub = torch.rand(shape, generator=generator, device=dev).clamp_min(1e-30)
    return torch.where(boost, g * ub ** (1 / a), g)


def speckle_field(shape: tuple[int, int, int, int], *, m: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Unit-mean Nakagami-m speckle ``n = R / E[R]`` (m = 1 is Rayleigh): shape (B, 1, H, W), m (B,).

    ``R = sqrt(G)``, ``G ~ Gamma(m, 1/m)`` (so ``E[R²] = 1``) and ``E[R] = Γ(m + ½) / Γ(m) / sqrt(m)``.
    For m = 1 the speckle SNR ``E[n] / std(n) = sqrt(π / (4 - π)) ≈ 1.913``.
    """
    dev = generator.device
    mm = m.to(dev).float()[:, None, None, None]  # (B, 1, 1, 1)
    G = standard_gamma(shape, mm, generator=generator) / mm
    mean_r = torch.exp(torch.lgamma(mm + 0.5) - torch.lgamma(mm)) / torch.sqrt(mm)
    return torch.sqrt(G) / mean_r


def apply_speckle(x: torch.Tensor, *, m: torch.Tensor, seed: int | torch.Tensor,
                  dynamic_range_db: float | None = None) -> torch.Tensor:
    """Multiplicative speckle on the linear envelope: ``y = x · n``, ``n`` unit-mean Nakagami-m.

    ``dynamic_range_db = None``: ``x`` is taken as a linear envelope. A number ``D``: ``x`` is a
    log-compressed B-mode image (``x = 1 + 20 log10(e) / D``, as :func:`sonokit.physics.simulate_bmode`
    writes), so the envelope ``e = 10^{D (x - 1) / 20}`` is speckled and re-compressed, then clipped to
    [0, 1].
    """
    check_image(x, where="speckle input")
    if dynamic_range_db is not None and not dynamic_range_db > 0:
        raise ValueError(f"dynamic_range_db must be > 0 or None, found {dynamic_range_db}")
    n = speckle_field(tuple(x.shape), m=m, generator=_device_generator(seed, x.device)).to(x.dtype)
    if dynamic_range_db is None:
        return x * n
    env = 10 ** (dynamic_range_db * (x - 1) / 20)
    y = 1 + 20 * torch.log10((env * n).clamp_min(1e-12)) / dynamic_range_db
    return y.clamp(0, 1)


@dataclass
class MultiplicativeSpeckle:
    """Random multiplicative speckle (evaluation degradations), see :func:`apply_speckle`.

    Args:
        kinds: speckle models drawn uniformly per sample: ``rayleigh`` (m = 1), ``nakagami``.
        nakagami_m: (min, max) Nakagami shape m for ``nakagami`` (m < 1 pre-Rayleigh, m > 1 post-Rayleigh);
            m >= 0.5 by definition.
        dynamic_range_db: ``None`` if images are linear envelopes, else the log-compression range in dB.
        clamp: clip the result to [0, 1] (linear domain only; the log domain is always clipped).
    """

    kinds: tuple[str, ...] = SPECKLE_KINDS
    nakagami_m: tuple[float, float] = (0.5, 3.0)
    dynamic_range_db: float | None = None
    clamp: bool = False

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in SPECKLE_KINDS] or ([] if self.kinds else ["(none)"])
        if bad:
            raise ValueError(f"unknown speckle kind(s) {bad}; expected a non-empty subset of {list(SPECKLE_KINDS)}")
        _check_range("nakagami_m", self.nakagami_m, low=0.5)
        if self.dynamic_range_db is not None and not self.dynamic_range_db > 0:
            raise ValueError(f"dynamic_range_db must be > 0 or None, found {self.dynamic_range_db}")

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        g = generator
        codes = torch.tensor([SPECKLE_KINDS.index(k) for k in self.kinds])
        kind = codes[torch.randint(0, len(codes), (batch,), generator=g)]
        m = _uniform(batch, *self.nakagami_m, g)
        return {"kind": kind, "m": torch.where(kind == 0, torch.ones_like(m), m), "seed": _seed(g)}

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        y = apply_speckle(x, m=params["m"], seed=params["seed"], dynamic_range_db=self.dynamic_range_db)
        return y.clamp(0, 1) if self.clamp else y

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0], generator))


# -------------------------------------------------------------------------------------- training pairs
class Degradation(Protocol):
    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]: ...
    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor: ...


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
        cy = _uniform(N, r, H - 1 - r, g)
        cx = _uniform(N, r, W - 1 - r, g)
        center = torch.stack([torch.round(cy - half) + half, torch.round(cx - half) + half], 1)  # (N, 2)
        quarter = torch.randint(0, 4, (N,), generator=g) if self.rotation in ("quarter", "both") else torch.zeros(N, dtype=torch.long)
        small = _uniform(N, -self.max_angle, self.max_angle, g) if self.rotation in ("small", "both") else torch.zeros(N)
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
