"""Multiplicative Rayleigh / Nakagami-m speckle on the linear envelope (optionally through log compression)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import RandomDegradation, check_image, check_range, device_generator, draw_seed, uniform

SPECKLE_KINDS = ("rayleigh", "nakagami")


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
    n = speckle_field(tuple(x.shape), m=m, generator=device_generator(seed, x.device)).to(x.dtype)
    if dynamic_range_db is None:
        return x * n
    env = 10 ** (dynamic_range_db * (x - 1) / 20)
    y = 1 + 20 * torch.log10((env * n).clamp_min(1e-12)) / dynamic_range_db
    return y.clamp(0, 1)


@dataclass
class MultiplicativeSpeckle(RandomDegradation):
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
        check_range("nakagami_m", self.nakagami_m, low=0.5)
        if self.dynamic_range_db is not None and not self.dynamic_range_db > 0:
            raise ValueError(f"dynamic_range_db must be > 0 or None, found {self.dynamic_range_db}")

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        g = generator
        codes = torch.tensor([SPECKLE_KINDS.index(k) for k in self.kinds])
        kind = codes[torch.randint(0, len(codes), (batch,), generator=g)]
        m = uniform(batch, *self.nakagami_m, g)
        return {"kind": kind, "m": torch.where(kind == 0, torch.ones_like(m), m), "seed": draw_seed(g)}

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        y = apply_speckle(x, m=params["m"], seed=params["seed"], dynamic_range_db=self.dynamic_range_db)
        return y.clamp(0, 1) if self.clamp else y
