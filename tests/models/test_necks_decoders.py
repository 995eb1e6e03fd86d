"""The simple pyramid neck and the decoders on their own."""
import pytest
import torch

from sonokit.errors import ConfigError
from sonokit.models import DECODERS, NECKS


@pytest.mark.parametrize("n_maps", [1, 4])
def test_simple_pyramid_builds_strides_4_to_32(n_maps):
    neck = NECKS.create("pyramid", in_channels=[32] * n_maps, reductions=[16] * n_maps, out_channels=8)
    assert neck.out_channels == [8] * 4 and neck.reductions == [4, 8, 16, 32]
    feats = [torch.rand(2, 32, 5, 6) for _ in range(n_maps)]
    outs = neck(feats)
    assert [tuple(o.shape) for o in outs] == [(2, 8, 20, 24), (2, 8, 10, 12), (2, 8, 5, 6), (2, 8, 3, 3)]
    sum(o.sum() for o in outs).backward()
    assert all(p.grad is not None for p in neck.parameters())
    if n_maps == 4:  # map i feeds level i only
        feats = [f.detach().requires_grad_() for f in feats]
        neck(feats)[1].sum().backward()
        assert [f.grad is not None for f in feats] == [False, True, False, False]


def test_simple_pyramid_refuses_what_it_cannot_use():
    with pytest.raises(ConfigError, match="1 map .* or 4 maps .*found 2"):
        NECKS.create("pyramid", in_channels=[32, 32], reductions=[16, 16])
    with pytest.raises(ConfigError, match="same stride"):
        NECKS.create("pyramid", in_channels=[32, 64], reductions=[8, 16])
    with pytest.raises(ConfigError, match="multiple of 4, found 2"):
        NECKS.create("pyramid", in_channels=[32], reductions=[2])


def test_upernet_uses_the_deepest_levels_and_stays_at_their_finest_stride():
    chans, red = [8, 16, 24, 32, 40], [2, 4, 8, 16, 32]
    dec = DECODERS.create("upernet", encoder_channels=chans, reductions=red, channels=8, pool_scales=[1, 3])
    assert dec.reduction == 4 and len(dec.lateral) == 3
    feats = [torch.rand(2, c, 64 // r, 64 // r) for c, r in zip(chans, red)]
    assert dec(feats, (64, 64)).shape == (2, 8, 16, 16)
    every = DECODERS.create("upernet", encoder_channels=chans, reductions=red, channels=8, levels=None)
    assert every.reduction == 2 and every(feats, (64, 64)).shape == (2, 8, 32, 32)
    with pytest.raises(ValueError, match="built for 5 feature maps, found 4"):
        dec(feats[1:], (64, 64))
    with pytest.raises(ConfigError, match="pool_scales must be a list"):
        DECODERS.create("upernet", encoder_channels=chans, reductions=red, pool_scales=[0])


def test_unet_decoder_counts_its_features_and_channels():
    dec = DECODERS.create("unet", encoder_channels=[8, 16], reductions=[4, 8], decoder_channels=[8, 4])
    assert dec.out_channels == 4
    assert dec([torch.rand(1, 8, 8, 8), torch.rand(1, 16, 4, 4)], (32, 32)).shape == (1, 4, 32, 32)
    with pytest.raises(ConfigError, match="decoder_channels needs 2 entries for this encoder, found 1"):
        DECODERS.create("unet", encoder_channels=[8, 16], reductions=[4, 8], decoder_channels=[8])
