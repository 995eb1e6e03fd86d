"""Pretext views: frequency band-stop, jigsaw, cross-patch jigsaw (Ellis et al. 2025, Sec. III-A)."""
import math

import numpy as np
import pytest
import torch

from sonokit.transforms.frequency import FrequencyBandStop, bandstop, bandstop_mask, bandstop_stopband, frequency_grid
from sonokit.transforms.jigsaw import CrossPatchJigsaw, Jigsaw, focal_mask, from_patches, to_patches


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _mask(kind, r0=20.0, width=15.0, angle=30.0, thickness=4.0, h=64, w=64, keep=10.0):
    t = lambda v: torch.tensor([float(v)])  # noqa: E731
    return bandstop_mask(h, w, kind=torch.tensor([kind]), r0=t(r0), width=t(width), angle=torch.deg2rad(t(angle)),
                         thickness=t(thickness), keep_radius=keep)[0]


def test_circular_bandstop_removes_exactly_the_annulus():
    m = _mask(0, r0=20, width=15)
    fy, fx = frequency_grid(64, 64)
    r = torch.sqrt(fx**2 + fy**2)
    assert torch.equal(m == 0, (r >= 20) & (r < 35))


def test_bandstop_masks_always_keep_the_low_frequency_disc():
    fy, fx = frequency_grid(64, 96)
    r = torch.sqrt(fx**2 + fy**2)
    aug = FrequencyBandStop(radius=(10, 40), width=(5, 60), thickness=(2, 30))
    params = aug.sample(64, _gen(1))
    m = aug.mask(64, 96, params)
    assert (m[:, r < 10] == 1).all()
    assert (m == 0).any(dim=(1, 2)).all()  # every image loses some band


def test_x_bandstop_is_two_strips_at_plus_minus_angle():
    m = _mask(1, r0=10, width=40, angle=45, thickness=3)
    fy, fx = frequency_grid(64, 64)
    r = torch.sqrt(fx**2 + fy**2)
    diag = (fx.abs() == fy.abs()) & (r >= 10) & (r < 50)
    assert (m[diag] == 0).all()  # both diagonals of a 45° X are stopped
    axes = ((fx == 0) | (fy == 0)) & (r >= 10)
    assert (m[axes] == 1).all()  # the frequency axes are far from a 45° X
    # symmetric under fx -> -fx (an X), so the filtered image stays real-valued-consistent
    assert torch.equal(m[:, 1:], m[:, 1:].flip(-1))


@pytest.mark.parametrize("angle, thickness, r0, width", [(30, 4, 20, 15), (10, 2, 40, 10), (75, 9, 10, 60), (0, 3, 15, 20)])
def test_x_bandstop_removes_exactly_the_two_strips(angle, thickness, r0, width):
    # independent formula: distance to each line through 0 at ±θ, cut to keep <= r < r0 + width
    m = _mask(1, r0=r0, width=width, angle=angle, thickness=thickness, h=64, w=80)
    fy, fx = frequency_grid(64, 80)
    r, th = torch.sqrt(fx**2 + fy**2), math.radians(angle)
    d1, d2 = (fx * math.sin(th) - fy * math.cos(th)).abs(), (fx * math.sin(th) + fy * math.cos(th)).abs()
    want = (torch.minimum(d1, d2) < thickness / 2) & (r >= 10) & (r < r0 + width)
    assert torch.equal(m == 0, want)


@pytest.mark.parametrize("h, w", [(48, 40), (33, 50)])
def test_bandstop_matches_numpy_reference_and_keeps_phase(h, w):
    rng = np.random.default_rng(0)
    x = rng.random((2, 1, h, w)).astype(np.float32)
    aug = FrequencyBandStop(clamp=False, width=(20, 60), thickness=(4, 12))
    params = aug.sample(2, _gen(2))
    y = aug.apply(torch.from_numpy(x), params).numpy()
    m = aug.mask(h, w, params).numpy()
    assert (m == m[:, (2 * (h // 2) - np.arange(h)) % h][:, :, (2 * (w // 2) - np.arange(w)) % w]).all()  # M(f) = M(-f)
    for b in range(2):  # independent per-image NumPy computation of the paper's formula
        X = np.fft.fftshift(np.fft.fft2(x[b, 0]))
        full = np.fft.ifft2(np.fft.ifftshift(m[b] * np.abs(X) * np.exp(1j * np.angle(X))))
        assert np.abs(full.imag).max() < 1e-5  # a point-symmetric mask keeps the image real
        ref = full.real
        np.testing.assert_allclose(y[b, 0], ref, atol=1e-5)
    # the DC term (mean intensity) is untouched
    np.testing.assert_allclose(y.mean(axis=(2, 3)), x.mean(axis=(2, 3)), atol=1e-5)


def test_bandstop_identity_when_not_applied_and_replayable():
    x = torch.rand(4, 1, 32, 32)
    aug = FrequencyBandStop(p=0.0)
    assert torch.allclose(aug(x, _gen()), x, atol=1e-5)
    aug = FrequencyBandStop()
    assert torch.equal(aug(x, _gen(5)), aug(x, _gen(5)))
    assert not torch.equal(aug(x, _gen(5)), aug(x, _gen(6)))


@pytest.mark.parametrize("kw, match", [
    (dict(radius=(-5, 100)), "radius"), (dict(radius=(5, 100)), "inside the kept"), (dict(kinds=("ring",)), "unknown band-stop"),
    (dict(p=2.0), "probability"), (dict(thickness=(3, 1)), "thickness"),
    (dict(angle=(10,)), "angle must be a pair"), (dict(angle=(80, 10)), "angle must be"),
    (dict(angle=(10, 100)), "<= 90"), (dict(width=(5, float("nan"))), "width must be a pair"),
])
def test_bandstop_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        FrequencyBandStop(**kw)


def test_bandstop_shape_error():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        bandstop(torch.rand(8, 8), torch.ones(1, 8, 8))


def test_patches_roundtrip_and_order():
    x = torch.arange(2 * 1 * 12 * 18, dtype=torch.float32).reshape(2, 1, 12, 18)
    p = to_patches(x, 6)
    assert p.shape == (2, 36, 1, 2, 3)
    assert torch.equal(p[:, 7], x[:, :, 2:4, 3:6])  # patch 7 = row 1, column 1
    assert torch.equal(from_patches(p, 6), x)


def test_jigsaw_is_a_permutation_of_patches_and_replayable():
    x = torch.rand(3, 1, 36, 36)
    jig = Jigsaw(grid=6)
    params = jig.sample(3, _gen(0))
    y = jig.apply(x, params)
    px, py = to_patches(x, 6), to_patches(y, 6)
    for b in range(3):
        assert sorted(params["perm"][b].tolist()) == list(range(36))
        for k in range(36):
            assert torch.equal(py[b, k], px[b, params["perm"][b, k]])
    assert torch.equal(jig(x, _gen(0)), y)


def test_cross_patch_jigsaw_keeps_focal_row_and_column_in_place():
    grid = 6
    x = torch.rand(16, 1, 48, 48)
    cj = CrossPatchJigsaw(grid=grid)
    params = cj.sample(16, _gen(3))
    y = cj.apply(x, params)
    px, py = to_patches(x, grid), to_patches(y, grid)
    focal = focal_mask(params["seed"], grid)
    assert (focal.sum(1) == 2 * grid - 1).all()  # one row + one column
    moved_some = False
    for b in range(16):
        s = int(params["seed"][b])
        for k in range(grid * grid):
            if k // grid == s // grid or k % grid == s % grid:  # focal: in place, one weak op
                weak = [px[b, k].flip(-1), px[b, k].flip(-2), px[b, k].flip(-1).flip(-2)]
                assert any(torch.equal(py[b, k], w) for w in weak)
                assert int(params["perm"][b, k]) == k
            else:  # non-focal: comes unchanged from a non-focal position
                src = int(params["perm"][b, k])
                assert not bool(focal[b, src])
                assert torch.equal(py[b, k], px[b, src])
                moved_some |= src != k
        nf = (~focal[b]).nonzero().squeeze(1).tolist()
        assert sorted(params["perm"][b, nf].tolist()) == nf
    assert moved_some
    assert torch.equal(cj(x, _gen(3)), y)


def test_jigsaw_grid_must_divide_image():
    with pytest.raises(ValueError, match="does not divide a 50x48 image"):
        Jigsaw(grid=6)(torch.rand(1, 1, 50, 48), _gen())
    with pytest.raises(ValueError, match="integer >= 2"):
        CrossPatchJigsaw(grid=1)


def test_rfft_layout_mask_is_the_centred_mask_shifted_and_halved():
    aug = FrequencyBandStop(p=0.7, angle=(0.0, 90.0))
    for h, w in ((64, 64), (63, 50), (33, 20)):
        params = aug.sample(16, torch.Generator().manual_seed(h))
        centred = aug.mask(h, w, params)
        half = aug.mask(h, w, params, layout="rfft")
        assert half.shape == (16, h, w // 2 + 1)
        assert torch.equal(torch.fft.ifftshift(centred, dim=(-2, -1))[..., : w // 2 + 1], half)
        # point symmetry M(f) = M(-f) on the centred grid, Nyquist row/column included
        iy, ix = (2 * (h // 2) - torch.arange(h)) % h, (2 * (w // 2) - torch.arange(w)) % w
        assert torch.equal(centred, centred[:, iy][:, :, ix])
        x = torch.rand(16, 1, h, w, generator=torch.Generator().manual_seed(1))
        assert torch.allclose(bandstop(x, centred), bandstop(x, half, layout="rfft"), atol=1e-6)
    with pytest.raises(ValueError, match="layout"):
        aug.mask(8, 8, aug.sample(1, torch.Generator()), layout="shifted")
    with pytest.raises(ValueError, match="rfft mask"):
        bandstop(torch.rand(1, 1, 8, 8), torch.ones(1, 8, 8), layout="rfft")


def test_apply_in_cpu_chunks_equals_bandstop_with_the_masks():
    # 6 images of 2x400x400 = 320 k pixels each: the CPU path filters them in chunks of 3 (about 1 M pixels)
    aug = FrequencyBandStop(p=0.8, clamp=False)
    params = aug.sample(6, torch.Generator().manual_seed(3))
    assert set(params["kind"].tolist()) == {0, 1}, "the batch should mix circles and X's"
    x = torch.rand(6, 2, 400, 400, generator=torch.Generator().manual_seed(4))
    want = bandstop(x, aug.mask(400, 400, params))
    assert torch.allclose(aug.apply(x, params), want, atol=1e-5)
    # the stop band is the complement of the mask
    stop = bandstop_stopband(40, 30, kind=params["kind"], r0=params["r0"], width=params["width"],
                             angle=params["angle"], thickness=params["thickness"])
    assert torch.equal((~stop).float(), bandstop_mask(40, 30, kind=params["kind"], r0=params["r0"],
                                                      width=params["width"], angle=params["angle"],
                                                      thickness=params["thickness"]))
