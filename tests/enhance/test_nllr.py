import numpy as np
import pytest
import torch

from sonokit.enhance import NLLRDenoiser, block_match, collaborative_wiener, estimate_noise_sigma, nllr_denoise, svd_threshold
from sonokit.enhance.nllr import dct_matrix
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


@pytest.mark.parametrize("shape,patch,stride,search,k", [((24, 21), 5, 3, 3, 6), ((17, 30), 4, 4, 6, 12),
                                                         ((12, 12), 8, 3, 10, 4)])
def test_block_match_picks_the_k_nearest_patches(shape, patch, stride, search, k):
    """Against a brute-force loop over every candidate (an independent implementation of the distances)."""
    y = np.random.default_rng(3).random(shape).astype(np.float32)
    refs, groups = block_match(torch.from_numpy(y), patch=patch, stride=stride, search=search, k=k)
    H, W = shape
    rows = sorted(set(range(0, H - patch + 1, stride)) | {H - patch})
    cols = sorted(set(range(0, W - patch + 1, stride)) | {W - patch})
    assert refs.tolist() == [[r, c] for r in rows for c in cols]

    def d(a, b):
        return float(((y[a[0]:a[0] + patch, a[1]:a[1] + patch] - y[b[0]:b[0] + patch, b[1]:b[1] + patch]) ** 2).sum())

    for ref, grp in zip(refs.tolist(), groups.tolist()):
        cands = [(i, j) for i in range(max(0, ref[0] - search), min(H - patch, ref[0] + search) + 1)
                 for j in range(max(0, ref[1] - search), min(W - patch, ref[1] + search) + 1)]
        best = sorted(d(ref, c) for c in cands)[:k]
        got = [d(ref, g) for g in grp]
        assert grp[0] == ref and len(set(map(tuple, grp))) == k
        assert got == pytest.approx(best, abs=1e-4)


def test_dct_matrix_is_orthonormal_dct_ii():
    from scipy.fft import dct

    D = dct_matrix(8, dtype=torch.float64)
    assert torch.allclose(D @ D.T, torch.eye(8, dtype=torch.float64), atol=1e-12)
    assert np.allclose(D.numpy(), dct(np.eye(8), norm="ortho", axis=0))


def test_collaborative_wiener_improves_on_its_pilot():
    x, y = noisy(64, sigma=0.1)
    t = torch.from_numpy(y)
    pilot = nllr_denoise(t, sigma=0.1, iterations=1)
    out = collaborative_wiener(t, pilot, 0.1)
    assert out.shape == t.shape and torch.isfinite(out).all()
    assert psnr(out.numpy(), x) > psnr(pilot.numpy(), x) + 0.3
    assert torch.equal(out, collaborative_wiener(t, pilot, 0.1))  # deterministic
    # a perfect pilot: the Wiener gains of the clean spectrum leave little noise
    oracle = collaborative_wiener(t, torch.from_numpy(x), 0.1)
    assert psnr(oracle.numpy(), x) > psnr(out.numpy(), x)
    # sigma = 0: nothing to remove, the image comes back; flat regions (all-zero spectra) stay finite
    assert torch.equal(collaborative_wiener(t, t, 0.0), t)
    flat = torch.zeros(32, 32)
    flat[:, 16:] = 0.5
    assert torch.equal(collaborative_wiener(flat, flat, 0.0), flat)
    assert torch.isfinite(collaborative_wiener(flat, flat, 0.05)).all()
    assert np.array_equal(nllr_denoise(flat.numpy(), sigma=0.0, wiener=1), flat.numpy())


def test_nllr_wiener_option_matches_its_two_steps():
    x, y = noisy(48)
    both = nllr_denoise(y, sigma=0.08, iterations=1, wiener=1)
    pilot = nllr_denoise(torch.from_numpy(y), sigma=0.08, iterations=1)
    assert np.array_equal(both, collaborative_wiener(torch.from_numpy(y), pilot, 0.08, stride=4, search=8).numpy())
    assert np.array_equal(NLLRDenoiser(iterations=1, wiener=1)(y, sigma=0.08), both)
    assert psnr(both, x) > psnr(pilot.numpy(), x)


def test_guide_blends_into_the_wiener_pilot():
    x, y = noisy(48)
    yt = torch.from_numpy(y)
    pilot = nllr_denoise(yt, sigma=0.08, iterations=1)
    g = torch.from_numpy(x) + 0.02 * torch.randn(48, 48, generator=torch.Generator().manual_seed(3))
    got = nllr_denoise(y, sigma=0.08, iterations=1, wiener=1, guide=g.numpy(), guide_weight=0.3)
    want = collaborative_wiener(yt, 0.7 * pilot + 0.3 * g, 0.08, stride=4, search=8).numpy()
    assert np.allclose(got, want, atol=1e-6)
    # weight 0 is plain nllr_wiener; a better guide (near the clean image) gives a better result
    plain = nllr_denoise(y, sigma=0.08, iterations=1, wiener=1)
    assert np.array_equal(nllr_denoise(y, sigma=0.08, iterations=1, wiener=1, guide=g.numpy(), guide_weight=0.0), plain)
    assert psnr(got, x) > psnr(plain, x)
    assert np.array_equal(NLLRDenoiser(iterations=1, wiener=1, guide_weight=0.3)(y, sigma=0.08, guide=g.numpy()), got)
    # batched tensors: image by image with its own guide
    yb, gb = torch.stack([yt, yt.flip(1)])[:, None], torch.stack([g, g.flip(1)])[:, None]
    b = nllr_denoise(yb, sigma=0.08, iterations=1, wiener=1, guide=gb, guide_weight=0.3)
    assert torch.allclose(b[0, 0], torch.from_numpy(got), atol=1e-6)
    assert torch.allclose(b[1, 0], nllr_denoise(yt.flip(1), sigma=0.08, iterations=1, wiener=1, guide=g.flip(1),
                                                guide_weight=0.3), atol=1e-6)
    with pytest.raises(ValueError, match="needs wiener >= 1"):
        nllr_denoise(y, guide=g.numpy())
    with pytest.raises(ValueError, match=r"guide must have the image's shape \(48, 48\)"):
        nllr_denoise(y, wiener=1, guide=g.numpy()[:40])
    with pytest.raises(ValueError, match="guide_weight must be in"):
        nllr_denoise(y, wiener=1, guide=g.numpy(), guide_weight=1.5)
    with pytest.raises(ValueError, match="guide_weight must be in"):
        NLLRDenoiser(guide_weight=-0.1)
    bad = g.numpy().copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="guide has 1 NaN/Inf"):
        nllr_denoise(y, wiener=1, guide=bad)
    with pytest.raises(ValueError, match="guide must have the images' shape"):
        nllr_denoise(yb, wiener=1, guide=gb[:1])


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
    with pytest.raises(ValueError, match="wiener must be an integer >= 0"):
        nllr_denoise(y, wiener=-1)
    with pytest.raises(ValueError, match="wiener_stride"):
        nllr_denoise(y, wiener=1, wiener_stride=9)
    with pytest.raises(ValueError, match="wiener_k=500"):
        nllr_denoise(y, wiener=1, wiener_k=500)
    with pytest.raises(ValueError, match="wiener_stride"):
        NLLRDenoiser(wiener=1, wiener_stride=0)
