import math

import numpy as np
import pytest
import torch

from sonokit.metrics import cnr, fwhm, gcnr, peak_edge_gradient, point_fwhm, psnr, speckle_snr, ssim

FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))  # 2.3548


def test_psnr_known_values():
    ref = np.zeros((4, 4))
    x = np.full((4, 4), 0.1)  # MSE = 0.01 -> 20 dB at data_range 1
    assert psnr(x, ref) == pytest.approx(20.0)
    assert psnr(x, ref, data_range=255) == pytest.approx(20 + 20 * math.log10(255))
    assert psnr(ref, ref) == math.inf
    assert psnr(torch.full((2, 2), 0.5), torch.zeros(2, 2)) == pytest.approx(10 * math.log10(4))


def test_ssim_identity_and_degradation():
    rng = np.random.default_rng(0)
    img = rng.random((32, 32))
    assert ssim(img, img) == pytest.approx(1.0)
    assert ssim(img[None, None], img[None, None]) == pytest.approx(1.0)
    assert ssim(img + 0.2 * rng.standard_normal(img.shape), img) < 0.9


@pytest.mark.parametrize(("sigma", "rel"), [(2.0, 0.02), (3.0, 0.01), (6.0, 0.01)])
def test_fwhm_of_sampled_gaussian(sigma, rel):
    t = np.arange(-40, 41, dtype=float)
    g = np.exp(-0.5 * ((t - 0.3) / sigma) ** 2)  # off-grid centre
    # linear interpolation at the crossings: < 1 % error from 3 samples per sigma up
    assert fwhm(g) == pytest.approx(FWHM_PER_SIGMA * sigma, rel=rel)
    assert fwhm(g, 0.1) == pytest.approx(0.1 * FWHM_PER_SIGMA * sigma, rel=rel)


def test_fwhm_triangle_exact_and_undefined():
    tri = np.array([0, 1, 2, 3, 4, 3, 2, 1, 0], dtype=float)  # half max 2 at samples 2 and 6
    assert fwhm(tri) == pytest.approx(4.0)
    assert fwhm(tri + 10, baseline=None) == pytest.approx(4.0)
    assert math.isnan(fwhm(np.array([1.0, 2.0, 3.0, 4.0])))  # never falls to half max on the right


def test_point_fwhm_axial_and_lateral():
    zz, xx = np.mgrid[-30:31, -30:31].astype(float)
    img = np.exp(-0.5 * (zz / 2.0) ** 2 - 0.5 * (xx / 4.0) ** 2)
    ax, lat = point_fwhm(img, spacing=(0.1, 0.2))
    assert ax == pytest.approx(0.1 * FWHM_PER_SIGMA * 2.0, rel=0.01)
    assert lat == pytest.approx(0.2 * FWHM_PER_SIGMA * 4.0, rel=0.01)


def test_cnr_hand_computed():
    img = np.array([[1.0, 3.0, 10.0, 10.0]])
    roi = np.array([[1, 1, 0, 0]], bool)
    # |2 - 10| / sqrt(1 + 0) = 8
    assert cnr(img, roi, ~roi) == pytest.approx(8.0)


def test_gcnr_disjoint_identical_and_partial():
    rng = np.random.default_rng(0)
    a = rng.random(2000)
    img = np.concatenate([a, a + 2.0])
    roi = np.arange(4000) < 2000
    assert gcnr(img, roi, ~roi) == pytest.approx(1.0)
    img2 = np.concatenate([a, a])
    assert gcnr(img2, roi, ~roi) == pytest.approx(0.0)
    # uniform [0, 1] vs uniform [0.5, 1.5]: overlap 0.5
    img3 = np.concatenate([np.linspace(0, 1, 2000, endpoint=False), np.linspace(0.5, 1.5, 2000, endpoint=False)])
    assert gcnr(img3, roi, ~roi, bins=30) == pytest.approx(0.5, abs=0.02)


def test_speckle_snr_rayleigh():
    rng = np.random.default_rng(1)
    env = np.abs(rng.standard_normal(200_000) + 1j * rng.standard_normal(200_000))
    assert speckle_snr(env) == pytest.approx(math.sqrt(math.pi / (4 - math.pi)), rel=0.01)  # 1.913
    assert speckle_snr(np.array([2.0, 4.0])) == pytest.approx(3.0)


def test_peak_edge_gradient():
    t = np.arange(50) * 0.5
    assert peak_edge_gradient(0.3 * t, spacing=0.5) == pytest.approx(0.3)
    assert peak_edge_gradient(np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(0.5)  # central difference
    x = np.linspace(-5, 5, 1001)
    edge = np.tanh(x / 0.5)  # max slope 1 / 0.5 = 2 at the centre
    assert peak_edge_gradient(edge, spacing=x[1] - x[0]) == pytest.approx(2.0, rel=1e-3)
    img = np.tile(np.array([0.0, 0.0, 1.0, 1.0])[:, None], (1, 5))  # edge across rows
    assert peak_edge_gradient(img, axis=-2) == pytest.approx(0.5)
    assert peak_edge_gradient(img, axis=-1) == 0.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="shapes"):
        psnr(np.zeros((2, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN/Inf"):
        psnr(np.array([np.nan]), np.array([0.0]))
    with pytest.raises(ValueError, match="non-empty"):
        cnr(np.zeros((2, 2)), np.zeros((2, 2), bool), np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="1-D"):
        fwhm(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="2-D image"):
        ssim(np.zeros((2, 8, 8)), np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="spacing"):
        fwhm(np.ones(5), spacing=0)
