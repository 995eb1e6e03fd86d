import hashlib

import numpy as np
import pytest

from sonokit.physics import phantom_sample, simulate_phantom
from sonokit.physics.phantom import Transducer, simulate_bmode


def test_phantom_reproducible_byte_for_byte(tmp_path):
    simulate_phantom(tmp_path / "a", n=3, size=48, seed=7)
    simulate_phantom(tmp_path / "b", n=3, size=48, seed=7)
    for sub in ("images", "masks"):
        for f in (tmp_path / "a" / sub).iterdir():
            assert hashlib.sha1(f.read_bytes()).digest() == hashlib.sha1((tmp_path / "b" / sub / f.name).read_bytes()).digest()
    simulate_phantom(tmp_path / "c", n=1, size=48, seed=8)
    assert (tmp_path / "a/images/phantom_0000.png").read_bytes() != (tmp_path / "c/images/phantom_0000.png").read_bytes()


def test_phantom_lesion_contrast_and_speckle():
    img, mask, label = phantom_sample(0, size=96, seed=0)
    assert img.shape == mask.shape == (96, 96) and 0 <= img.min() and img.max() <= 1
    inside, outside = img[mask == 1].mean(), img[(mask == 0)].mean()
    assert (inside < outside) if label == "hypoechoic" else (inside > outside)
    # fully developed speckle: envelope SNR (mean/std) of a uniform region near the Rayleigh value 1.91
    rng = np.random.default_rng(0)
    ech = np.ones((128, 128))
    t = Transducer()
    dr = 200.0  # wide dynamic range: invert the log compression to recover the envelope
    b = simulate_bmode(ech, pixel_mm=0.1, rng=rng, transducer=t, dynamic_range_db=dr)
    env = 10 ** ((b.astype(np.float64) * dr - dr) / 20)
    snr = env.mean() / env.std()
    assert 1.6 < snr < 2.2


def test_phantom_bad_options(tmp_path):
    with pytest.raises(ValueError, match="dynamic_range_db"):
        simulate_bmode(np.ones((8, 8)), pixel_mm=0.1, rng=np.random.default_rng(0), dynamic_range_db=0)
    with pytest.raises(ValueError, match="n must be"):
        simulate_phantom(tmp_path, n=0)
