"""SAM's image encoder for ultrasound: sizes, input adaptation, position embedding, identity at initialisation."""
import pytest
import torch
import torch.nn.functional as F

from sonokit.errors import ConfigError
from sonokit.models.sam import SAM_VARIANTS, SamImageEncoder
from sonokit.models.sam.encoder import PIXEL_MEAN, PIXEL_STD, PosEmbedDown, token_grid


def enc(**kw) -> SamImageEncoder:
    torch.manual_seed(0)
    return SamImageEncoder(**({"variant": "vit_tiny", "img_size": 64} | kw)).eval()


def test_variants_are_the_official_sizes():
    assert {k: (v.embed_dim, v.depth, v.num_heads, v.global_attn) for k, v in SAM_VARIANTS.items()} == {
        "vit_b": (768, 12, 12, (2, 5, 8, 11)), "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
        "vit_h": (1280, 32, 16, (7, 15, 23, 31)), "vit_tiny": (192, 12, 3, (2, 5, 8, 11))}
    with torch.device("meta"):  # no memory: the paper's size keeps SAM's layout at 32 x 32 tokens
        e = SamImageEncoder("vit_b", img_size=256)
    assert e.grid == 32 and tuple(e.pos_embed.shape) == (1, 64, 64, 768)
    assert tuple(e.patch_embed.proj.weight.shape) == (768, 3, 16, 16) and e.patch_embed.proj.stride == (8, 8)
    assert tuple(e.blocks[2].attn.rel_pos_h.shape) == (63, 64) and tuple(e.blocks[0].attn.rel_pos_h.shape) == (27, 64)


@pytest.mark.parametrize("size, stride, pos, grid", [(256, 8, "conv", 32), (64, 8, "conv", 8), (32, 8, "conv", 4),
                                                    (1024, 16, "conv", 64), (128, 16, "conv", 8),
                                                    (96, 8, "interpolate", 12), (200, 8, "interpolate", 25)])
def test_valid_sizes(size, stride, pos, grid):
    assert token_grid(size, stride, pos) == grid


@pytest.mark.parametrize("size, stride, pos, msg", [
    (100, 8, "conv", "img_size 100 is not a multiple of patch_stride 8; use 96 or 104"),
    (96, 8, "conv", r"token grid img_size / patch_stride = 12 must be 64 / 2\^k; with patch_stride 8 use img_size "
                    r"512, 256, 128, 64, 32, or pos_adapt: interpolate"),
    (16, 8, "conv", "at least 32"), (256, 4, "conv", "patch_stride must be 8"), ("256", 8, "conv", "found '256'"),
    (2048, 16, "conv", "must be 64 / 2")])
def test_invalid_sizes_say_which_are_valid(size, stride, pos, msg):
    with pytest.raises(ConfigError, match=msg):
        token_grid(size, stride, pos)


@pytest.mark.parametrize("kw, msg", [({"variant": "vit_s"}, "sam_variant must be one of vit_b, vit_l, vit_h, vit_tiny"),
                                     ({"hf_input": True}, "set cnn_branch: true"),
                                     ({"fusion": "freq"}, "fusion must be one of sf, spatial, none"),
                                     ({"adapters": "all"}, "adapters must be one of every, global, none")])
def test_bad_options(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        enc(**kw)


@pytest.mark.parametrize("kw, grid", [({}, 8), ({"patch_stride": 16}, 4), ({"pos_adapt": "interpolate", "img_size": 96}, 12),
                                      ({"cnn_branch": True, "hf_input": True}, 8)])
def test_output_is_the_neck_embedding(kw, grid):
    e = enc(**kw)
    size = e.img_size
    with torch.no_grad():
        y = e(torch.rand(2, 1, size, size))
    assert y.shape == (2, 256, grid, grid) and torch.isfinite(y).all()
    with pytest.raises(ValueError, match=f"built for {size}x{size} inputs got 48x48"):
        e(torch.rand(1, 1, 48, 48))


def test_gray_input_is_repeated_and_normalised_as_sam():
    e = enc()
    x = torch.rand(1, 1, 64, 64)
    xn = e.preprocess(x)
    for c in range(3):
        assert torch.allclose(xn[0, c], (x[0, 0] * 255 - PIXEL_MEAN[c]) / PIXEL_STD[c])


def test_samus_patch_embedding_resizes_to_s_plus_8_at_stride_8():
    e = enc(adapters="none")
    x = e.preprocess(torch.rand(1, 1, 64, 64))
    ref = F.conv2d(F.interpolate(x, size=(72, 72), mode="bilinear", align_corners=False), e.patch_embed.proj.weight,
                   e.patch_embed.proj.bias, stride=8).permute(0, 2, 3, 1)
    assert torch.allclose(e.tokens(x), ref + e.position_embedding(), atol=1e-5)


def test_position_embedding_conv_starts_as_average_pooling():
    pos = torch.randn(1, 64, 64, 16)
    down = PosEmbedDown(16, 3)
    ref = F.avg_pool2d(pos.permute(0, 3, 1, 2), 8).permute(0, 2, 3, 1)
    assert torch.allclose(down(pos), ref, atol=1e-6)
    e = enc(pos_adapt="interpolate")
    assert e.pos_adapter is None and e.position_embedding().shape == (1, 8, 8, 192)


def randomise_sam_tensors(e: SamImageEncoder) -> None:
    """Non-zero SAM position tables (SAM zero-initialises them), so the comparison below is not trivial."""
    with torch.no_grad():
        for n, p in e.named_parameters():
            if "pos" in n and "adapter" not in n:
                p.normal_(0, 0.5)


@pytest.mark.parametrize("extra", [{"adapters": "every"}, {"adapters": "global"}, {"fusion": "sf"}, {"fusion": "spatial"},
                                   {"adapters": "every", "fusion": "sf"}])
def test_adapters_and_fusion_start_at_sams_function(extra):
    plain = enc(adapters="none", fusion="none")
    randomise_sam_tensors(plain)
    other = enc(**({"adapters": "none", "fusion": "none"} | extra))
    missing, unexpected = other.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(("adapter" in k or "fusion" in k) for k in missing) and missing
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(other(x), plain(x), atol=1e-5)


def test_added_parameters_are_named_for_the_unfreeze_patterns():
    e = enc(cnn_branch=True, hf_input=True, fusion="sf")
    sam = {"patch_embed", "pos_embed", "neck"}
    sam_block = {"norm1", "norm2", "attn", "mlp"}
    for n, _ in e.named_parameters():
        parts = n.split(".")
        if parts[0] == "blocks":
            assert parts[2] in sam_block or "adapter" in parts[2], n
        else:
            assert parts[0] in sam or any(m in parts[0] for m in ("adapter", "cnn_branch", "fusion")), n
