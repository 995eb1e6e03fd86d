import numpy as np
import pytest
import torch

from sonokit.enhance import NLLRDenoiser, block_match, estimate_noise_sigma, nllr_denoise, svd_threshold
from sonokit.metrics import psnr


def piecewise_smooth(n: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n] / n
    x = 0.3 + 0.3 * (yy > 0.4) + 0.2 * (((xx - 0.6) ** 2 + (yy - 0.3) ** 2) < 0.04) + 0.1 * xx
    return x.astype(np.float32)


def noisy(n: int = 64, sigma: float = 0.08, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = piecewise_smooth(n)
    return x, (x + sigma * np.random.default_rng(seed).standard_normal(x.shape)).astype(np.float32)


def test_psnr_gain_known_and_estimated_sigma():
    x, y = noisy()
    before = psnr(y, x)
    d_known = nllr_denoise(y, sigma=0.08)
    d_est = nllr_denoise(y)
    assert isinstance(d_known, np.ndarray) and d_known.shape == y.shape and d_known.dtype == np.float32
    assert psnr(d_known, x) - before >= 3.0
    assert psnr(d_est, x) - before >= 3.0


def test_deterministic_and_torch_batch():
    _, y = noisy(48)
    a = nllr_denoise(y, sigma=0.08)
    b = nllr_denoise(y, sigma=0.08)
    assert np.array_equal(a, b)
    t = torch.from_numpy(y)
    batch = nllr_denoise(torch.stack([t, t])[:, None], sigma=0.08)  # (2, 1, H, W)
    assert batch.shape == (2, 1, 48, 48) and torch.equal(batch[0], batch[1])
    assert np.array_equal(batch[0, 0].numpy(), a)


def test_noise_estimate():
    x, y = noisy(128, sigma=0.05)
    assert estimate_noise_sigma(y) == pytest.approx(0.05, rel=0.1)
    assert estimate_noise_sigma(x) < 0.01


def test_block_match_groups_contain_reference_and_are_in_bounds():
    _, y = noisy(40)
    refs, groups = block_match(torch.from_numpy(y), patch=8, stride=4, search=5, k=9)
    assert torch.equal(groups[:, 0], refs)  # distance 0: the reference itself comes first
    assert groups.min() >= 0 and groups.max() <= 40 - 8
    assert refs[:, 0].max() == 32 and refs[:, 1].max() == 32  # last position always included
    assert ((groups - refs[:, None]).abs() <= 5).all()


def test_svd_and_gram_thresholding_agree():
    g = torch.randn(20, 16, 6, generator=torch.Generator().manual_seed(0))
    g[:, :, :3] += 5 * torch.randn(20, 16, 1, generator=torch.Generator().manual_seed(1))
    for mode in ("hard", "soft"):
        a, ra = svd_threshold(g, 3.0, mode=mode, method="svd")
        b, rb = svd_threshold(g, 3.0, mode=mode, method="gram")
        assert torch.allclose(a, b, atol=1e-4) and torch.equal(ra, rb)
    # tau = 0 keeps everything
    assert torch.allclose(svd_threshold(g, 0.0)[0], g, atol=1e-4)


def test_options_and_denoiser_wrapper():
    x, y = noisy(32)
    for kw in ({"threshold": "soft", "c": 0.3}, {"weighting": "uniform", "iterations": 1}, {"stride": 8, "k": 8}):
        d = nllr_denoise(y, sigma=0.08, **kw)
        assert np.isfinite(d).all() and psnr(d, x) > psnr(y, x)
    assert np.array_equal(NLLRDenoiser()(y, sigma=0.08), nllr_denoise(y, sigma=0.08))


def test_bad_arguments():
    _, y = noisy(16)
    with pytest.raises(ValueError, match="patch 32 is larger than the 16x16 image"):
        nllr_denoise(y, patch=32)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        nllr_denoise(y, sigma=-0.1)
    bad = y.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN/Inf"):
        nllr_denoise(bad)
    with pytest.raises(ValueError, match="stride"):
        nllr_denoise(y, stride=9)
    with pytest.raises(ValueError, match="k=500"):
        nllr_denoise(y, k=500)
    with pytest.raises(ValueError, match="threshold"):
        nllr_denoise(y, threshold="median")
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        nllr_denoise(np.zeros((2, 16, 16), np.float32))
    with pytest.raises(ValueError, match="weighting"):
        NLLRDenoiser(weighting="max")
