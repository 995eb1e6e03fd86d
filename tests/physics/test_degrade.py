import math

import pytest
import torch

from sonokit.metrics import point_fwhm, speckle_snr
from sonokit.physics import (
    AdditiveGaussianNoise,
    FourierPerturbation,
    GaussianPSFBlur,
    MultiplicativeSpeckle,
    PairSynthesizer,
    synthesize_pair,
)
from sonokit.physics.degrade import fourier_perturb, gaussian_kernels1d, psf_blur, speckle_field

FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))  # 2.3548
OPS = [GaussianPSFBlur(depth_factor=(1.0, 2.0)), AdditiveGaussianNoise(), FourierPerturbation(), MultiplicativeSpeckle()]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def point(h: int = 65, w: int = 65, b: int = 1) -> torch.Tensor:
    x = torch.zeros(b, 1, h, w)
    x[:, :, h // 2, w // 2] = 1.0
    return x


@pytest.mark.parametrize("op", OPS, ids=lambda o: type(o).__name__)
def test_replayable_and_seed_dependent(op):
    x = torch.rand(3, 1, 24, 24, generator=gen(9))
    a, b = op(x, gen(1)), op(x, gen(1))
    assert torch.equal(a, b)
    assert not torch.equal(a, op(x, gen(2)))
    assert a.shape == x.shape and torch.isfinite(a).all()
    # apply() with stored parameters replays exactly
    params = op.sample(3, gen(1))
    assert torch.equal(op.apply(x, params), a)


@pytest.mark.parametrize("op", OPS, ids=lambda o: type(o).__name__)
def test_per_sample_parameters_differ(op):
    if isinstance(op, MultiplicativeSpeckle):
        op = MultiplicativeSpeckle(kinds=("nakagami",))  # Rayleigh samples all have m = 1
    params = op.sample(4, gen(0))
    scalars = [v for k, v in params.items() if k not in ("seed", "kind") and v.dtype.is_floating_point]
    assert scalars and any(len(set(v.tolist())) == 4 for v in scalars)


def test_kernels_sum_to_one_and_blur_preserves_mean():
    k = gaussian_kernels1d(torch.tensor([0.0, 0.7, 2.5]), 10)
    assert torch.allclose(k.sum(1), torch.ones(3))
    assert k[0, 10] == 1  # sigma 0: identity
    x = torch.rand(2, 1, 32, 40, generator=gen(3))
    y = psf_blur(x, axial_sigma=torch.tensor([1.0, 2.5]), lateral_sigma=torch.tensor([3.0, 0.5]), padding="circular")
    assert torch.allclose(y.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-6)
    # a constant image stays constant, also with reflect padding and a depth-varying PSF
    c = torch.full((2, 1, 32, 32), 0.4)
    yc = GaussianPSFBlur(depth_factor=(1.5, 3.0))(c, gen(0))
    assert torch.allclose(yc, c, atol=1e-6)


def test_point_blur_fwhm_axial_vs_lateral():
    ax, lat = torch.tensor([2.0, 4.0]), torch.tensor([4.0, 2.0])
    y = psf_blur(point(b=2), axial_sigma=ax, lateral_sigma=lat)
    for i in range(2):
        fa, fl = point_fwhm(y[i, 0].numpy())
        assert fa == pytest.approx(FWHM_PER_SIGMA * float(ax[i]), rel=0.02)
        assert fl == pytest.approx(FWHM_PER_SIGMA * float(lat[i]), rel=0.02)


def test_pixel_mm_converts_sigmas():
    blur = GaussianPSFBlur(axial_sigma=(0.4, 0.4), lateral_sigma=(0.6, 0.6), pixel_mm=(0.2, 0.3))
    p = blur.sample(2, gen(0))
    assert torch.allclose(p["axial_sigma"], torch.full((2,), 2.0)) and torch.allclose(p["lateral_sigma"], torch.full((2,), 2.0))


def test_depth_varying_lateral_blur_grows_with_depth():
    x = torch.zeros(1, 1, 64, 48)
    x[:, :, 6, 24] = 1.0
    x[:, :, 58, 24] = 1.0
    y = GaussianPSFBlur(axial_sigma=(1.0, 1.0), lateral_sigma=(2.0, 2.0), depth_factor=(2.0, 2.0))(x, gen(0))[0, 0]
    _, top = point_fwhm(y[:32].numpy())
    _, bottom = point_fwhm(y[32:].numpy())
    expect = lambda row: FWHM_PER_SIGMA * 2.0 * (1 + row / 63)  # noqa: E731
    assert top == pytest.approx(expect(6), rel=0.08) and bottom == pytest.approx(expect(58), rel=0.08)
    assert bottom > 1.5 * top


def test_gaussian_noise_std():
    x = torch.full((2, 1, 128, 128), 0.5)
    noise = AdditiveGaussianNoise(sigma=(0.05, 0.1))
    params = noise.sample(2, gen(4))
    y = noise.apply(x, params)
    std = (y - x).std(dim=(1, 2, 3))
    assert torch.allclose(std, params["sigma"], rtol=0.03)
    assert torch.allclose((y - x).mean(dim=(1, 2, 3)), torch.zeros(2), atol=3e-3)


def test_fourier_perturbation_real_finite_and_identity_at_zero():
    for h, w in ((32, 32), (33, 31), (16, 30)):
        x = torch.rand(2, 1, h, w, generator=gen(h))
        y = FourierPerturbation(phase_std=(0.2, 0.5), magnitude_std=(0.1, 0.4))(x, gen(1))
        assert y.shape == x.shape and not y.is_complex() and torch.isfinite(y).all()
        assert not torch.allclose(y, x, atol=1e-3)
        assert torch.allclose(y.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5)  # keep_dc
        z = fourier_perturb(x, phase_std=torch.zeros(2), magnitude_std=torch.zeros(2), seed=5)
        assert torch.allclose(z, x, atol=1e-5)


def test_fourier_perturbation_is_hermitian():
    # the perturbed spectrum of a real image must stay Hermitian: the full-FFT route agrees with rfft/irfft
    x = torch.rand(1, 1, 16, 16, generator=gen(0))
    y = fourier_perturb(x, phase_std=torch.tensor([0.5]), magnitude_std=torch.tensor([0.5]), seed=3)
    Y = torch.fft.fft2(y.double())
    mirror = torch.roll(torch.flip(Y, (-2, -1)), (1, 1), (-2, -1))  # Y(-k)
    assert torch.allclose(Y, mirror.conj(), atol=1e-4)


def test_speckle_mean_and_rayleigh_snr():
    x = torch.full((1, 1, 256, 256), 0.5)
    y = MultiplicativeSpeckle(kinds=("rayleigh",))(x, gen(0))
    assert float(y.mean()) == pytest.approx(0.5, rel=0.02)
    assert speckle_snr(y.numpy()) == pytest.approx(math.sqrt(math.pi / (4 - math.pi)), rel=0.05)  # 1.91


@pytest.mark.parametrize("m", [0.6, 2.5])
def test_nakagami_speckle_unit_mean_and_snr(m):
    n = speckle_field((1, 1, 128, 128), m=torch.tensor([m]), generator=gen(1))
    er = math.exp(math.lgamma(m + 0.5) - math.lgamma(m)) / math.sqrt(m)  # E[R] with E[R^2] = 1
    assert float(n.mean()) == pytest.approx(1.0, rel=0.02)
    assert speckle_snr(n.numpy()) == pytest.approx(er / math.sqrt(1 - er**2), rel=0.05)


def test_speckle_log_domain_stays_in_range():
    x = torch.rand(2, 1, 16, 16, generator=gen(0))
    y = MultiplicativeSpeckle(dynamic_range_db=50.0)(x, gen(1))
    assert y.min() >= 0 and y.max() <= 1 and not torch.equal(x, y)


def test_pair_synthesizer_shapes_replay_and_exact_crops():
    frame = torch.rand(1, 1, 48, 56, generator=gen(0))
    synth = PairSynthesizer(patch=16, noises=(AdditiveGaussianNoise(), FourierPerturbation(), MultiplicativeSpeckle()),
                            rotation="both")
    d1, t1 = synth(frame, gen(3), n=5)
    d2, t2 = synth(frame, gen(3), n=5)
    assert d1.shape == t1.shape == (5, 1, 16, 16)
    assert torch.equal(d1, d2) and torch.equal(t1, t2)
    assert d1.min() >= 0 and d1.max() <= 1 and not torch.equal(d1, t1)
    # unrotated crops are the frame's pixels; quarter turns are exact rot90s of them
    plain = PairSynthesizer(patch=16, blur=None, noises=(), rotation="quarter")
    p = plain.sample(tuple(frame.shape), gen(7), n=6)
    _, target = plain.apply(frame, p)
    for i in range(6):
        r0, c0 = (int(v - 7.5) for v in p["center"][i])
        k = round(float(p["angle"][i]) / (math.pi / 2))
        assert torch.allclose(target[i, 0], torch.rot90(frame[0, 0, r0:r0 + 16, c0:c0 + 16], k), atol=1e-5)


def test_pair_synthesizer_uses_one_noise_model_per_patch():
    frame = torch.full((4, 1, 32, 32), 0.5)
    synth = PairSynthesizer(patch=16, blur=None, clamp=False, rotation="none",
                            noises=(AdditiveGaussianNoise(sigma=(0.0, 0.0)), AdditiveGaussianNoise(sigma=(0.1, 0.1))))
    p = synth.sample(tuple(frame.shape), gen(0), n=16)
    degraded, target = synth.apply(frame, p)
    noisy = (degraded - target).flatten(1).std(1) > 0.05  # (16,)
    assert torch.equal(noisy, p["noise_index"] == 1)
    assert 0 < int(noisy.sum()) < 16


def test_synthesize_pair_function():
    frame = torch.rand(40, 40, generator=gen(0))
    d, t = synthesize_pair(frame, patch=8, generator=gen(1), blur=GaussianPSFBlur(), noise=(AdditiveGaussianNoise(),), n=3)
    assert d.shape == t.shape == (3, 1, 8, 8)


def test_bad_options_and_inputs():
    with pytest.raises(ValueError, match=r"axial_sigma.*found \(-1.0, 2.0\)"):
        GaussianPSFBlur(axial_sigma=(-1.0, 2.0))
    with pytest.raises(ValueError, match="lateral_sigma"):
        GaussianPSFBlur(lateral_sigma=(3.0, 1.0))
    with pytest.raises(ValueError, match="depth_factor"):
        GaussianPSFBlur(depth_factor=(0.0, 1.0))
    with pytest.raises(ValueError, match="pixel_mm"):
        GaussianPSFBlur(pixel_mm=-0.1)
    with pytest.raises(ValueError, match="sigma"):
        AdditiveGaussianNoise(sigma=(-0.1, 0.1))
    with pytest.raises(ValueError, match="phase_std"):
        FourierPerturbation(phase_std=(0.5, 0.1))
    with pytest.raises(ValueError, match="nakagami_m"):
        MultiplicativeSpeckle(nakagami_m=(0.2, 1.0))
    with pytest.raises(ValueError, match="unknown speckle kind"):
        MultiplicativeSpeckle(kinds=("gamma",))
    with pytest.raises(ValueError, match="rotation"):
        PairSynthesizer(rotation="random")
    with pytest.raises(ValueError, match="PSF sigmas must be >= 0"):
        psf_blur(point(), axial_sigma=torch.tensor([-1.0]), lateral_sigma=torch.tensor([1.0]))
    bad = torch.rand(1, 1, 16, 16)
    bad[0, 0, 3, 3] = float("nan")
    for op in OPS:
        with pytest.raises(ValueError, match="NaN/Inf"):
            op(bad, gen(0))
        with pytest.raises(ValueError, match=r"expected shape \(B, 1, H, W\), found \(1, 3, 16, 16\)"):
            op(torch.rand(1, 3, 16, 16), gen(0))
        with pytest.raises(ValueError, match=r"expected shape \(B, 1, H, W\)"):
            op(torch.rand(16, 16)[None], gen(0))
    with pytest.raises(ValueError, match="needs at least"):
        PairSynthesizer(patch=32)(torch.rand(1, 1, 20, 20), gen(0))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_degradations_on_gpu():
    x = torch.rand(2, 1, 32, 32, device="cuda")
    for op in OPS:
        y = op(x, gen(0))
        assert y.device.type == "cuda" and torch.isfinite(y).all()
        assert torch.equal(y, op(x, gen(0)))
    d, t = PairSynthesizer(patch=16, noises=tuple(OPS[1:]))(x, gen(0))
    assert d.device.type == "cuda" and d.shape == (2, 1, 16, 16)
