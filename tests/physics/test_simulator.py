"""Validation of the physical B-mode simulator (sonokit.physics.simulator) against theory.

Rayleigh speckle SNR, speckle size vs the PSF, point-target FWHM vs the analytic PSF, RF/IQ consistency,
attenuation + TGC, log compression, scan conversion, reproducibility, bad options. Each test runs in well
under a second; the optional pymust cross-check (skipped without pymust) takes ~15 s.
"""
import math

import numpy as np
import pytest
from scipy.signal import hilbert

from sonokit.metrics.quality import fwhm, point_fwhm, speckle_snr
from sonokit.physics import log_compress, pulse_echo_fwhm_mm, random_scatterers, simulate_ultrasound

RAYLEIGH_SNR = math.sqrt(math.pi / (4 - math.pi))  # 1.913


def uniform_scatterers(n: int, x_range, z_range, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(*x_range, n), rng.uniform(*z_range, n)], axis=1)  # (n, 2) as (x, z) mm


def speckle_size(envelope: np.ndarray, dz: float, dx: float) -> tuple[float, float]:
    """(axial, lateral) FWHM in mm of the normalised intensity autocovariance (unbiased, via FFT).

    For Gaussian PSFs this equals the PSF's envelope FWHM: |R_h(τ)|² with R_h the PSF autocorrelation."""
    i = envelope**2 - (envelope**2).mean()
    H, W = i.shape
    spec = np.fft.rfft2(i, s=(2 * H, 2 * W))
    ac = np.fft.irfft2(np.abs(spec) ** 2, s=(2 * H, 2 * W))
    n = np.fft.irfft2(np.abs(np.fft.rfft2(np.ones_like(i), s=(2 * H, 2 * W))) ** 2, s=(2 * H, 2 * W))
    ac = np.fft.fftshift(ac / np.maximum(n, 1))  # unbiased: divide by the overlap count
    ac /= ac.max()
    return fwhm(ac[:, W], dz), fwhm(ac[H, :], dx)


def test_fully_developed_speckle_is_rayleigh():
    # 301 x 201 image (30 x 20 mm, 0.1 mm pixels), 60k unit scatterers: ~12 per resolution cell
    pos = uniform_scatterers(60_000, (-10.6, 10.6), (-0.4, 30.4))
    sim = simulate_ultrasound(positions_mm=pos)
    assert sim.image.shape == sim.envelope.shape == (301, 201)
    snr = speckle_snr(sim.envelope[20:-20, 20:-20])  # away from the edges
    assert snr == pytest.approx(RAYLEIGH_SNR, rel=0.05)
    # the echogenicity-map route gives the same statistics
    sim2 = simulate_ultrasound(echogenicity=np.ones((4, 4)), scatterers_per_cell=15, seed=1,
                               depth_range_mm=(10, 25), width_mm=10, image_shape=(151, 101))
    assert speckle_snr(sim2.envelope) == pytest.approx(RAYLEIGH_SNR, rel=0.05)


def test_speckle_size_follows_the_psf():
    kw = dict(echogenicity=np.ones((2, 2)), scatterers_per_cell=10, depth_range_mm=(10, 18), width_mm=12,
              image_shape=(161, 241), seed=3)  # 0.05 mm pixels
    d = 0.05
    narrow = speckle_size(simulate_ultrasound(lateral_fwhm_mm=0.5, **kw).envelope, d, d)
    wide = speckle_size(simulate_ultrasound(lateral_fwhm_mm=1.0, **kw).envelope, d, d)
    assert wide[1] / narrow[1] == pytest.approx(2.0, rel=0.2)  # doubling the beam doubles the speckle width
    assert narrow[1] == pytest.approx(0.5, rel=0.2) and wide[1] == pytest.approx(1.0, rel=0.2)
    low_bw = speckle_size(simulate_ultrasound(fractional_bandwidth=0.4, **kw).envelope, d, d)
    high_bw = speckle_size(simulate_ultrasound(fractional_bandwidth=0.8, **kw).envelope, d, d)
    assert high_bw[0] < 0.7 * low_bw[0]  # higher bandwidth -> shorter speckle (theory: half as long)
    for (ax, _), bw in ((low_bw, 0.4), (high_bw, 0.8)):
        assert ax == pytest.approx(pulse_echo_fwhm_mm(fractional_bandwidth=bw)[0], rel=0.2)


@pytest.mark.parametrize("kw", [{}, {"fractional_bandwidth": 1.0, "lateral_fwhm_mm": 1.2},
                                {"f0_mhz": 3.0, "f_number": 2.0}])
def test_point_scatterer_matches_theoretical_psf(kw):
    x0, z0 = 0.0337, 15.0123  # off the pixel and RF grids
    sim = simulate_ultrasound(positions_mm=[[x0, z0]], depth_range_mm=(13, 17), width_mm=4,
                              image_shape=(401, 401), **kw)  # 0.01 mm pixels
    dz, dx = sim.z_mm[1] - sim.z_mm[0], sim.x_mm[1] - sim.x_mm[0]
    ax, lat = point_fwhm(sim.envelope, (dz, dx))
    ax_th, lat_th = pulse_echo_fwhm_mm(**kw)
    assert ax == pytest.approx(ax_th, rel=0.1) and lat == pytest.approx(lat_th, rel=0.1)
    r, c = np.unravel_index(np.argmax(sim.envelope), sim.envelope.shape)
    assert abs(sim.z_mm[r] - z0) <= dz and abs(sim.x_mm[c] - x0) <= dx
    assert sim.envelope.max() == pytest.approx(1.0, rel=0.05)  # unit amplitude -> unit envelope peak


def test_rf_hilbert_envelope_matches_iq():
    pos = uniform_scatterers(3000, (-3, 3), (9, 21))
    sim = simulate_ultrasound(positions_mm=pos, depth_range_mm=(10, 20), width_mm=4, image_shape=(101, 41),
                              return_rf=True)
    assert sim.rf.shape == sim.iq.shape == (sim.rf_depth_mm.size, 41)
    hil = np.abs(hilbert(sim.rf, axis=0))
    err = np.abs(hil - np.abs(sim.iq))[100:-100]  # away from the FFT's wrap-around at the ends
    assert err.max() < 0.01 * np.abs(sim.iq).max()


def test_attenuation_and_tgc():
    kw = dict(echogenicity=np.ones((2, 2)), depth_range_mm=(0, 40), width_mm=6, image_shape=(201, 61), seed=0)
    flat = simulate_ultrasound(attenuation_db_cm_mhz=0.5, **kw).envelope  # TGC compensates by default
    raw = simulate_ultrasound(attenuation_db_cm_mhz=0.5, tgc_db_cm_mhz=0.0, **kw).envelope
    z = np.linspace(0, 40, 201)
    slope_raw = np.polyfit(z[10:-10], 20 * np.log10(raw.mean(1))[10:-10], 1)[0]  # dB/mm
    slope_flat = np.polyfit(z[10:-10], 20 * np.log10(flat.mean(1))[10:-10], 1)[0]
    assert slope_raw == pytest.approx(-0.5 * 5.0 * 2 / 10, rel=0.15)  # round trip: -alpha f0 2z = -0.5 dB/mm
    assert abs(slope_flat) < 0.05


def test_log_compression():
    env = np.array([1.0, 10 ** (-25 / 20), 10 ** (-50 / 20), 1e-4, 0.0])
    np.testing.assert_allclose(log_compress(env, dynamic_range_db=50), [1, 0.5, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(log_compress(env * 7, dynamic_range_db=100), [1, 0.75, 0.5, 0.2, 0], atol=1e-12)
    pos = uniform_scatterers(5000, (-4, 4), (9, 21))
    for dr in (20.0, 60.0):
        img = simulate_ultrasound(positions_mm=pos, depth_range_mm=(10, 20), width_mm=6, image_shape=(101, 61),
                                  dynamic_range_db=dr).image
        assert img.dtype == np.float32 and img.min() >= 0 and 0.9 < img.max() <= 1
    assert np.all(log_compress(np.zeros(3)) == 0)


def test_convex_scan_conversion():
    kw = dict(echogenicity=np.ones((8, 8)), geometry="convex", depth_range_mm=(5, 40), angle_span_deg=60,
              apex_radius_mm=30, image_shape=(120, 140), n_lines=96, seed=5)
    sim = simulate_ultrasound(**kw)
    assert sim.image.shape == sim.envelope.shape == (120, 140)
    zz, xx = np.meshgrid(sim.z_mm, sim.x_mm, indexing="ij")
    depth, angle = np.hypot(xx, zz + 30) - 30, np.degrees(np.arctan2(xx, zz + 30))
    outside = (depth < 5 - 1e-6) | (depth > 40 + 1e-6) | (np.abs(angle) > 30 + 1e-6)
    inside = (depth > 6) & (depth < 39) & (np.abs(angle) < 29)
    assert outside.mean() > 0.2 and (sim.image[outside] == 0).all() and (sim.envelope[outside] == 0).all()
    assert (sim.image[inside] > 0).mean() > 0.99
    # Rayleigh on the beam grid (pixels between lines 0.3-0.8 mm apart are interpolated, which smooths)
    visible = (sim.rf_depth_mm > 6) & (sim.rf_depth_mm < 39)
    assert speckle_snr(np.abs(sim.iq[visible, 5:-5])) == pytest.approx(RAYLEIGH_SNR, rel=0.05)
    again = simulate_ultrasound(**kw)
    assert again.image.tobytes() == sim.image.tobytes()  # same seed -> same bytes
    assert simulate_ultrasound(**{**kw, "seed": 6}).image.tobytes() != sim.image.tobytes()
    sector = simulate_ultrasound(**{**kw, "apex_radius_mm": 0.0, "depth_range_mm": (0, 30)})
    assert sector.image[0, 0] == 0 and sector.image[-5, 70] > 0  # apex corner empty, centre near the bottom imaged


def test_random_scatterers_follow_the_map():
    ech = np.ones((10, 20))
    ech[:, 10:] = 3.0  # right half brighter
    pos, amp = random_scatterers(ech, x_range_mm=(0, 19), z_range_mm=(0, 9), scatterers_per_cell=2,
                                 resolution_cell_mm=(0.5, 1.0), seed=0)
    assert pos.shape == (len(amp), 2) and len(amp) == round(2 * 19 * 9 / 0.5)
    assert (amp[pos[:, 0] < 9.4] == 1).all() and (amp[pos[:, 0] > 9.6] == 3).all()
    pos2, amp2 = random_scatterers(ech, x_range_mm=(0, 19), z_range_mm=(0, 9), scatterers_per_cell=2,
                                   resolution_cell_mm=(0.5, 1.0), seed=0)
    assert np.array_equal(pos, pos2) and np.array_equal(amp, amp2)


@pytest.mark.parametrize("kw, match", [
    ({"dynamic_range_db": 0}, "dynamic_range_db"),
    ({"dynamic_range_db": -10}, "dynamic_range_db"),
    ({"f0_mhz": -5.0}, "f0_mhz"),
    ({"fs_mhz": -40.0}, "fs_mhz"),
    ({"fs_mhz": 10.0}, "fs_mhz"),  # below the RF Nyquist rate at 5 MHz
    ({"fractional_bandwidth": 0.0}, "fractional_bandwidth"),
    ({"c_m_s": float("nan")}, "c_m_s"),
    ({"positions_mm": [[0.0, float("nan")]]}, "positions_mm"),
    ({"positions_mm": [[0.0, 1.0, 2.0]]}, "positions_mm"),
    ({"positions_mm": [[0.0, 1.0]], "amplitudes": [1.0, 2.0]}, "amplitudes"),
    ({"positions_mm": None}, "no phantom"),
    ({"echogenicity": -np.ones((2, 2)), "positions_mm": None}, "echogenicity"),
    ({"echogenicity": np.ones((2, 2))}, "not both"),
    ({"geometry": "phased"}, "geometry"),
    ({"lateral_fwhm_mm": 0.5, "f_number": 2.0}, "not both"),
    ({"depth_range_mm": (20.0, 10.0)}, "depth_range_mm"),
    ({"geometry": "convex", "angle_span_deg": 200.0}, "angle_span_deg"),
    ({"n_lines": 1}, "n_lines"),
])
def test_bad_options_raise(kw, match):
    args = {"positions_mm": [[0.0, 10.0]], **kw}
    with pytest.raises(ValueError, match=match):
        simulate_ultrasound(**args)


def test_log_compress_bad_range():
    with pytest.raises(ValueError, match="dynamic_range_db"):
        log_compress(np.ones(3), dynamic_range_db=0)


@pytest.mark.slow
def test_cross_check_with_pymust():
    """Same phantom through pymust (MUST: plane-wave simus + DAS) and sonokit given pymust's measured PSF
    widths: both give Rayleigh speckle and speckle of the same size."""
    pymust = pytest.importorskip("pymust")
    param = pymust.getparam("L11-5v")  # 7.6 MHz linear array
    delays = pymust.txdelay(param, 0)  # one plane wave
    xi, zi = np.meshgrid(np.linspace(-1.5e-3, 1.5e-3, 61), np.linspace(10.5e-3, 13.5e-3, 121))  # 0.05 x 0.025 mm

    def must(pos_mm: np.ndarray) -> np.ndarray:
        rf = pymust.simus(pos_mm[:, 0] * 1e-3, pos_mm[:, 1] * 1e-3, np.ones(len(pos_mm)), delays, param)[0]
        iq = pymust.rf2iq(rf, param)
        m = pymust.dasmtx(1j * np.array(iq.shape), xi, zi, delays, param)
        return np.abs((m @ iq.flatten(order="F")).reshape(xi.shape, order="F"))

    ax, lat = point_fwhm(must(np.array([[0.0, 12.0]])), (0.025, 0.05))
    f0 = param.fc / 1e6
    bw = 2 * math.log(2) * param.c / 1e3 / (math.pi * f0 * ax)  # the bandwidth that gives pymust's axial FWHM
    pos = uniform_scatterers(2500, (-2.1, 2.1), (9.9, 14.1), seed=0)  # ~7 per resolution cell
    env_must = must(pos)
    env_sono = simulate_ultrasound(positions_mm=pos, f0_mhz=f0, fractional_bandwidth=bw, lateral_fwhm_mm=lat,
                                   c_m_s=param.c, depth_range_mm=(10.5, 13.5), width_mm=3.0,
                                   image_shape=(121, 61)).envelope
    snr_m, snr_s = speckle_snr(env_must), speckle_snr(env_sono)
    assert snr_m == pytest.approx(RAYLEIGH_SNR, rel=0.1) and snr_s == pytest.approx(RAYLEIGH_SNR, rel=0.1)
    size_m, size_s = speckle_size(env_must, 0.025, 0.05), speckle_size(env_sono, 0.025, 0.05)
    assert size_s[0] == pytest.approx(size_m[0], rel=0.25) and size_s[1] == pytest.approx(size_m[1], rel=0.25)
