"""Tiled inference: identical to whole-image inference for operators whose receptive field fits the overlap."""
import pytest
import torch
import torch.nn.functional as F

from sonokit.tiling import tiled_apply


def _conv(k: int, seed: int = 0):
    w = torch.randn(2, 1, k, k, generator=torch.Generator().manual_seed(seed))
    return lambda t: F.conv2d(t, w, padding=k // 2)


@pytest.mark.parametrize("shape", [(1, 1, 200, 333), (2, 1, 64, 64), (1, 1, 130, 70)])
def test_tiled_equals_whole_image_for_local_operator(shape):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    fn = _conv(9)  # receptive-field radius 4 <= overlap // 2
    whole = fn(x)
    tiled = tiled_apply(fn, x, tile=64, overlap=16)
    assert tiled.shape == whole.shape
    assert torch.allclose(tiled, whole, atol=1e-5)


def test_tiled_differs_only_near_seams_when_receptive_field_is_too_large():
    x = torch.rand(1, 1, 96, 160, generator=torch.Generator().manual_seed(2))
    fn = _conv(21)  # radius 10 > overlap // 2 = 4
    diff = (tiled_apply(fn, x, tile=64, overlap=8) - fn(x)).abs().amax(dim=(0, 1, 2))  # per column
    assert diff.max() > 1e-3  # seams do differ
    # far from the first vertical seam (around column 60) it is identical up to float32 summation order
    # (a 21x21 conv adds 441 products; 1.1e-5 was seen), ten times below what marks a seam
    assert diff[:40].max() < 1e-4


def test_multiple_keeps_tiles_on_the_grid_and_pads():
    x = torch.rand(1, 1, 100, 150)
    seen = []

    def fn(t):
        seen.append(tuple(t.shape[-2:]))
        return t * 2

    y = tiled_apply(fn, x, tile=64, overlap=16, multiple=16)
    assert y.shape == x.shape and torch.allclose(y, 2 * x)
    assert all(h % 16 == 0 and w % 16 == 0 for h, w in seen)


@pytest.mark.parametrize("kw, match", [(dict(tile=64, overlap=64), "overlap < tile"),
                                       (dict(tile=60, overlap=16, multiple=16), "multiple of"),
                                       (dict(tile=64, overlap=8, multiple=16), "overlap")])
def test_tiling_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        tiled_apply(lambda t: t, torch.rand(1, 1, 80, 80), **kw)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        tiled_apply(lambda t: t, torch.rand(80, 80))
