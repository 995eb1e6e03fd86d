"""Classical baselines: median, SRAD, BM3D (optional), NLLR through one registry."""
import numpy as np
import pytest

from sonokit.enhance.classical import CLASSICAL, median_denoise, srad


def _speckled_step(seed=0):
    rng = np.random.default_rng(seed)
    clean = np.full((64, 64), 0.3)
    clean[:, 32:] = 0.7
    speckle = rng.gamma(4.0, 1 / 4.0, clean.shape)  # mean 1, CoV 0.5
    return clean, np.clip(clean * speckle, 0, 1).astype(np.float32)


def test_median_removes_impulses():
    img = np.full((32, 32), 0.5, np.float32)
    img[::7, ::5] = 1.0
    assert np.allclose(median_denoise(img, size=3), 0.5)


def test_srad_smooths_speckle_and_keeps_the_edge():
    clean, noisy = _speckled_step()
    out = srad(noisy, iterations=60)
    flat = slice(8, 56), slice(4, 24)
    cov_in = noisy[flat].std() / noisy[flat].mean()
    cov_out = out[flat].std() / out[flat].mean()
    assert cov_out < 0.5 * cov_in  # speckle reduced
    edge_before = abs(noisy[:, 36:40].mean() - noisy[:, 24:28].mean())
    edge_after = abs(out[:, 36:40].mean() - out[:, 24:28].mean())
    assert edge_after > 0.8 * edge_before  # the step survives
    assert np.abs(out - clean).mean() < np.abs(noisy - clean).mean()


def test_registry_runs_every_baseline_alike():
    _, noisy = _speckled_step(1)
    for name in CLASSICAL.list():
        if name == "bm3d":
            pytest.importorskip("bm3d")
        out = CLASSICAL.create(name)(noisy)
        assert out.shape == noisy.shape and out.dtype == np.float32 and np.isfinite(out).all()


def test_classical_bad_input():
    with pytest.raises(ValueError, match="NaN or Inf"):
        srad(np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        median_denoise(np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="dt"):
        srad(np.zeros((8, 8)), dt=1.0)
