"""Adapters: zero-initialised bottlenecks, the adapted block equals SAM's block at start, SAMUS's CNN branch."""
from functools import partial

import pytest
import torch
from segment_anything.modeling.image_encoder import Block

from sonokit.models.sam.adapters import AdaptedBlock, Adapter, CNNBranch, CrossAttentionAdapter


def test_adapter_is_zero_at_initialisation_and_learns():
    a = Adapter(32, 0.25)
    assert a.down.out_features == 8
    x = torch.randn(2, 5, 5, 32)
    assert torch.equal(a(x), torch.zeros_like(x))
    assert torch.equal(Adapter(32, skip=True)(x), x)
    a(x).sum().backward()
    assert a.up.weight.grad.abs().sum() > 0  # the up-projection learns first; the rest after one step


@pytest.mark.parametrize("window", [0, 14])
def test_adapted_block_equals_sams_block_at_initialisation(window):
    torch.manual_seed(0)
    ref = Block(dim=48, num_heads=3, mlp_ratio=4.0, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                use_rel_pos=True, window_size=window, input_size=(8, 8))
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.2)
    blk = AdaptedBlock(dim=48, num_heads=3, window_size=window, input_size=(8, 8), adapter=True,
                       cross_adapter=window == 0)
    missing, unexpected = blk.load_state_dict(ref.state_dict(), strict=False)  # SAM's names fit
    assert not unexpected and all("adapter" in k for k in missing)
    x, cnn = torch.randn(2, 8, 8, 48), torch.randn(2, 8, 8, 48)
    y, cnn_out = blk(x, cnn if window == 0 else None)
    assert torch.allclose(y, ref(x), atol=1e-5)
    assert (cnn_out is None) == (window != 0)


def test_cross_attention_adapter_starts_at_zero():
    a = CrossAttentionAdapter(48, 3)
    x, c = torch.randn(2, 4, 4, 48), torch.randn(2, 4, 4, 48)
    assert torch.equal(a(x, c), torch.zeros_like(x))
    with torch.no_grad():
        a.proj.weight.normal_()
    assert a(x, c).abs().sum() > 0


@pytest.mark.parametrize("stride, size", [(8, 64), (16, 64)])
def test_cnn_branch_reaches_the_token_grid(stride, size):
    b = CNNBranch(48, stride, width=8).eval()
    x, hf = torch.randn(2, 3, size, size), torch.randn(2, 3, size, size)
    t = b(x)
    assert t.shape == (2, size // stride, size // stride, 48)
    assert torch.allclose(b(x, hf), t + b(hf), atol=1e-5)  # the high-frequency image shares the branch
