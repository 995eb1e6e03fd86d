"""The B-mode phantom dataset: random echogenicity maps (skin layer, one star-shaped lesion) imaged by
:func:`sonokit.physics.simulator.simulate_ultrasound`.

For each image: an echogenicity map (background, a skin/fat layer, one lesion of random star shape that is
hypo- or hyperechoic) -> uniformly random point scatterers (10 per resolution cell, amplitudes from the map)
-> complex-baseband RF by the separable pulse-echo PSF (Gaussian-modulated cosine axially, Gaussian beam
laterally) -> envelope -> log compression to ``dynamic_range_db`` -> one image column per beam line. The
lesion mask is exact (it is the region whose echogenicity was changed). A fixed seed reproduces every image
byte for byte (NumPy's PCG64 seeded by ``(seed, index)``).

Units: depth/width in mm, frequencies in MHz, speed of sound in m/s.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.io import write_png
from .simulator import simulate_ultrasound


@dataclass(frozen=True)
class Transducer:
    """Linear-array imaging parameters (defaults: a 5 MHz breast probe)."""

    center_mhz: float = 5.0
    fractional_bandwidth: float = 0.6
    lateral_fwhm_mm: float = 0.6
    speed_m_s: float = 1540.0

    def __post_init__(self) -> None:
        if self.center_mhz <= 0 or self.fractional_bandwidth <= 0 or self.lateral_fwhm_mm <= 0 or self.speed_m_s <= 0:
            raise ValueError(f"transducer parameters must be positive, found {self}")

    @property
    def wavelength_mm(self) -> float:
        return self.speed_m_s / (self.center_mhz * 1e6) * 1e3


def pulse_echo_psf(t: Transducer, dz_mm: float, dx_mm: float) -> np.ndarray:
    """Separable 2-D RF point-spread function (depth x lateral), sampled at (dz_mm, dx_mm).

    The same PSF that :func:`sonokit.physics.simulator.simulate_ultrasound` applies (there at complex baseband,
    per scatterer); kept for users who convolve their own grids.

    Axial: exp(-z^2 / 2 sigma_z^2) cos(4 pi z / lambda) (two-way travel, so spatial frequency 2/lambda);
    sigma_z from the -6 dB fractional bandwidth B: sigma_f = B f0 / (2 sqrt(2 ln 2)), sigma_t = 1/(2 pi sigma_f),
    sigma_z = c sigma_t / 2. Lateral: Gaussian with the given FWHM.
    """
    sigma_f = t.fractional_bandwidth * t.center_mhz * 1e6 / (2 * np.sqrt(2 * np.log(2)))
    sigma_z = t.speed_m_s / (2 * np.pi * sigma_f) / 2 * 1e3  # mm
    sigma_x = t.lateral_fwhm_mm / (2 * np.sqrt(2 * np.log(2)))
    z = np.arange(-int(np.ceil(3 * sigma_z / dz_mm)), int(np.ceil(3 * sigma_z / dz_mm)) + 1) * dz_mm
    x = np.arange(-int(np.ceil(3 * sigma_x / dx_mm)), int(np.ceil(3 * sigma_x / dx_mm)) + 1) * dx_mm
    axial = np.exp(-(z**2) / (2 * sigma_z**2)) * np.cos(4 * np.pi * z / t.wavelength_mm)
    lateral = np.exp(-(x**2) / (2 * sigma_x**2))
    return np.outer(axial, lateral)


def star_shape(size: int, rng: np.random.Generator, *, min_radius: float = 0.08, max_radius: float = 0.22) -> np.ndarray:
    """A random star-shaped region (smooth radius harmonics) in a (size, size) grid, as bool."""
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    r0 = rng.uniform(min_radius, max_radius) * size
    aspect = rng.uniform(0.6, 1.0)
    k = np.arange(2, 6)
    amp = rng.uniform(0, 0.18, k.size) / k
    phase = rng.uniform(0, 2 * np.pi, k.size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dy, dx = (yy - cy) / aspect, xx - cx
    theta = np.arctan2(dy, dx)
    radius = r0 * (1 + (amp[:, None, None] * np.cos(k[:, None, None] * theta + phase[:, None, None])).sum(0))
    return np.hypot(dy, dx) <= radius


def simulate_bmode(echogenicity: np.ndarray, *, pixel_mm: float, rng: np.random.Generator,
                   transducer: Transducer = Transducer(), dynamic_range_db: float = 50.0,
                   oversample: int = 8, scatterers_per_cell: float = 10.0) -> np.ndarray:
    """B-mode image (H, W) float32 in [0, 1] from an (H, W) echogenicity map (scatterer amplitude scale, >= 0).

    A thin wrapper over :func:`sonokit.physics.simulator.simulate_ultrasound` (linear array, one line per
    column, pixel centres ``pixel_mm`` apart from depth 0): ``scatterers_per_cell`` random scatterers per
    resolution cell with amplitudes from the map, RF sampled ``oversample`` times per pixel along depth
    (raised to at least 1.5x the RF Nyquist rate), envelope, log compression to ``dynamic_range_db``.
    """
    if dynamic_range_db <= 0:
        raise ValueError(f"dynamic_range_db must be > 0, found {dynamic_range_db}")
    if pixel_mm <= 0 or oversample < 1:
        raise ValueError(f"pixel_mm must be > 0 and oversample >= 1, found {pixel_mm}, {oversample}")
    H, W = np.shape(echogenicity)
    t = transducer
    c_mm_us = t.speed_m_s / 1000.0
    nyquist = 2 * t.center_mhz * (1 + t.fractional_bandwidth / 2)
    fs = max(c_mm_us / (2 * pixel_mm / oversample), 1.5 * nyquist)  # MHz: dz = c / (2 fs)
    sim = simulate_ultrasound(
        echogenicity=echogenicity, scatterers_per_cell=scatterers_per_cell, seed=rng,
        f0_mhz=t.center_mhz, fractional_bandwidth=t.fractional_bandwidth, fs_mhz=fs, c_m_s=t.speed_m_s,
        lateral_fwhm_mm=t.lateral_fwhm_mm, depth_range_mm=(0.0, (H - 1) * pixel_mm),
        width_mm=(W - 1) * pixel_mm, image_shape=(H, W), dynamic_range_db=dynamic_range_db)
    return sim.image


def phantom_sample(index: int, *, size: int = 160, seed: int = 0, pixel_mm: float = 0.2,
                   dynamic_range_db: float = 50.0) -> tuple[np.ndarray, np.ndarray, str]:
    """One phantom frame: (image (H, W) float32 in [0, 1], mask (H, W) uint8, label 'hypoechoic'|'hyperechoic')."""
    rng = np.random.default_rng([seed, index])
    ech = np.ones((size, size))
    depth = np.arange(size)[:, None]
    skin = int(rng.uniform(0.05, 0.12) * size)
    ech[depth[:, 0] < skin] = rng.uniform(1.5, 2.5)  # bright skin / fascia layer
    ech *= np.exp(-0.004 * depth * (1 - rng.uniform(0, 1)))  # mild residual attenuation after TGC
    mask = star_shape(size, rng)
    hypo = rng.random() < 0.7
    ech[mask] *= rng.uniform(0.08, 0.35) if hypo else rng.uniform(2.5, 4.0)
    image = simulate_bmode(ech, pixel_mm=pixel_mm, rng=rng, dynamic_range_db=dynamic_range_db)
    return image, mask.astype(np.uint8), "hypoechoic" if hypo else "hyperechoic"


def simulate_phantom(out: str | Path, *, n: int = 100, size: int = 160, seed: int = 0, pixel_mm: float = 0.2,
                     progress: Callable[[int, int], None] | None = None) -> Path:
    """Write ``n`` phantom frames in the folder layout (images/, masks/, labels.csv) under ``out``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, found {n}")
    if size < 32:
        raise ValueError(f"size must be >= 32 pixels, found {size}")
    out = Path(out)
    rows = []
    for i in range(n):
        if progress:
            progress(i, n)
        image, mask, label = phantom_sample(i, size=size, seed=seed, pixel_mm=pixel_mm)
        sid = f"phantom_{i:04d}"
        write_png(out / "images" / f"{sid}.png", image)
        write_png(out / "masks" / f"{sid}.png", mask)
        rows.append({"id": sid, "label": label, "group": "", "spacing_mm": pixel_mm, "anatomy": "phantom"})
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    if progress:
        progress(n, n)
    return out
