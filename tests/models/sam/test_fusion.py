"""Spatial-frequency fusion (identity at initialisation, the frequency filter) and the Haar input vs pywt."""
import numpy as np
import pytest
import pywt
import torch
import torch.nn.functional as F

from sonokit.models.sam.fusion import SpatialFrequencyFusion, frequency_filter, haar_dwt2, haar_high_frequency


def test_identity_filter_gives_the_map_back_and_a_filter_acts_per_frequency():
    x = torch.randn(2, 4, 8, 8)
    w = torch.zeros(4, 8, 5, 2)
    w[..., 0] = 1
    assert torch.allclose(frequency_filter(x, w), x, atol=1e-5)
    w[:, 0, 0, 0] = 0  # remove the DC component of every channel
    y = frequency_filter(x, w)
    assert torch.allclose(y.mean((-2, -1)), torch.zeros(2, 4), atol=1e-5)
    assert torch.allclose(y, x - x.mean((-2, -1), keepdim=True), atol=1e-5)
    with pytest.raises(ValueError, match=r"expected \(4, 8, 5, 2\)"):
        frequency_filter(x, torch.zeros(4, 8, 8, 2))


@pytest.mark.parametrize("mode", ["sf", "spatial"])
def test_fusion_is_the_identity_at_initialisation_and_learns(mode):
    torch.manual_seed(0)
    f = SpatialFrequencyFusion(16, 8, mode)
    assert hasattr(f, "filter") == (mode == "sf")
    x = torch.randn(2, 8, 8, 16)  # (B, H, W, C) tokens
    assert torch.equal(f(x), x)
    opt = torch.optim.SGD(f.parameters(), lr=0.5)
    for _ in range(3):  # proj (zero-initialised) learns first, then the branches, then the gate between them
        opt.zero_grad()
        (f(x) - x.flip(1)).square().mean().backward()
        opt.step()
    assert not torch.allclose(f(x), x)
    got = {n for n, p in f.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert got == {n for n, _ in f.named_parameters()}  # every part learns
    with pytest.raises(ValueError, match="built for a 8x8 token grid got 4x4"):
        f(torch.randn(1, 4, 4, 16))


def test_haar_bands_equal_pywt():
    rng = np.random.default_rng(0)
    img = rng.random((2, 32, 48))
    ll, lh, hl, hh = haar_dwt2(torch.from_numpy(img))
    for i in range(2):
        cA, (cH, cV, cD) = pywt.dwt2(img[i], "haar")
        for ours, ref in ((ll, cA), (lh, cH), (hl, cV), (hh, cD)):
            np.testing.assert_allclose(ours[i].numpy(), ref, atol=1e-12)
    with pytest.raises(ValueError, match="even height and width, found 31x48"):
        haar_dwt2(torch.rand(1, 31, 48))


def test_high_frequency_image_follows_the_codes_recipe():
    rng = np.random.default_rng(1)
    img = rng.random((2, 1, 32, 32)).astype(np.float32)
    img[1, 0, 8:20, 8:20] = 0.1  # a dark "lesion"

    def mm(a):
        return (a - a.min()) / (a.max() - a.min())

    out = haar_high_frequency(torch.from_numpy(img))
    assert out.shape == (2, 1, 32, 32) and float(out.min()) == 0 and float(out.max()) == pytest.approx(1)
    for i in range(2):
        _, (cH, cV, cD) = pywt.dwt2(img[i, 0].astype(np.float64), "haar")
        merged = torch.from_numpy(mm(cH) + mm(cV) + mm(cD))[None, None]
        ref = mm(F.interpolate(merged, size=(32, 32), mode="bilinear", align_corners=False)[0, 0].numpy())
        np.testing.assert_allclose(out[i, 0].numpy(), ref, atol=1e-5)
    const = haar_high_frequency(torch.full((1, 1, 16, 16), 0.3))
    assert torch.isfinite(const).all() and const.abs().max() == 0
