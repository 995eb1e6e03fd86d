"""SAM weights: official-layout checkpoints (random state dicts of that layout), their errors, pretrained-ViT init."""
import pytest
import torch

from sonokit.errors import CheckpointError, UnsafeCheckpointError
from sonokit.models import MODELS, create_encoder
from sonokit.models.sam.checkpoint import is_new, resize_rel_pos
from sonokit.runs.pretrain import save_encoder

from ._util import official_sam, randomise, save_official, tiny


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sam") / "sam_vit_tiny.pth"
    return path, save_official(path)


def test_official_layout_loads_with_relative_positions_resampled(tiny_file):
    path, sd = tiny_file
    m = tiny(sam_checkpoint=str(path))
    own = m.state_dict()
    globals_ = {f"image_encoder.blocks.{i}.attn.rel_pos_{a}" for i in (2, 5, 8, 11) for a in "hw"}
    for k, v in own.items():
        if is_new(k):
            continue
        if k in globals_:
            assert sd[k].shape == (127, 64) and v.shape == (15, 64)  # 2 * 64 - 1 -> 2 * 8 - 1
            assert torch.allclose(v, resize_rel_pos(sd[k], 15))
        else:
            assert torch.equal(v, sd[k]), k
    assert not own["image_encoder.blocks.0.adapter.up.weight"].any()  # sonokit's additions keep their init


def test_the_encoder_is_sams_encoder_on_its_token_grid(tiny_file):
    """At 128 px / stride 16 (8 x 8 tokens), without additions, the encoder computes what segment_anything's
    encoder built for 128 px computes with the same (resampled) position tables."""
    from functools import partial

    from segment_anything.modeling import ImageEncoderViT

    path, _ = tiny_file
    m = tiny(sam_checkpoint=str(path), img_size=128, patch_stride=16, pos_adapt="interpolate", adapters="none",
             fusion="none", corrector="none", mc_samples=0).eval()
    ref = ImageEncoderViT(img_size=128, patch_size=16, embed_dim=192, depth=12, num_heads=3, mlp_ratio=4,
                          norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), qkv_bias=True, use_rel_pos=True,
                          global_attn_indexes=[2, 5, 8, 11], window_size=14, out_chans=256).eval()
    sd = {k: v for k, v in m.image_encoder.state_dict().items() if k != "pos_embed"}
    ref.load_state_dict(sd | {"pos_embed": m.image_encoder.position_embedding().detach()})
    x = torch.rand(2, 1, 128, 128)
    with torch.no_grad():
        assert torch.allclose(m.image_encoder(x), ref(m.image_encoder.preprocess(x)), atol=1e-4)


@pytest.mark.slow
def test_the_encoder_is_sams_encoder_at_1024_px(tiny_file):
    """patch_stride 16 at 1024 px without additions computes exactly what segment_anything's encoder computes."""
    path, sd = tiny_file
    m = tiny(sam_checkpoint=str(path), img_size=1024, patch_stride=16, adapters="none", fusion="none",
             corrector="none", mc_samples=0).eval()
    ref = official_sam("vit_tiny").eval()
    ref.load_state_dict(sd)
    x = torch.rand(1, 1, 1024, 1024)
    with torch.no_grad():
        ours = m.image_encoder(x)
        theirs = ref.image_encoder((x.expand(-1, 3, -1, -1) * 255 - ref.pixel_mean) / ref.pixel_std)
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_wrong_variant_names_both(tmp_path):
    fake = {"image_encoder.patch_embed.proj.weight": torch.zeros(1024, 3, 16, 16)}
    fake |= {f"image_encoder.blocks.{i}.norm1.weight": torch.zeros(1) for i in range(24)}
    torch.save(fake, tmp_path / "sam_vit_l.pth")
    with pytest.raises(CheckpointError, match=r"sam_vit_l.pth' holds a vit_l image encoder \(embed dim 1024, 24 "
                                              r"blocks\); the model is vit_tiny \(192, 12\); set sam_variant: vit_l"):
        tiny(sam_checkpoint=str(tmp_path / "sam_vit_l.pth"))


def edited(tmp_path, sd, name, drop=(), add=None):
    out = {k: v for k, v in sd.items() if not k.startswith(drop)} if drop else dict(sd)
    out.update(add or {})
    torch.save(out, tmp_path / name)
    return str(tmp_path / name)


def test_incomplete_or_foreign_files_are_named_with_what_differs(tiny_file, tmp_path):
    _, sd = tiny_file
    with pytest.raises(CheckpointError, match=r"holds an unknown image encoder \(embed dim 192, 6 blocks\); the "
                                              r"model is vit_tiny \(192, 12\)"):
        tiny(sam_checkpoint=edited(tmp_path, sd, "half.pth", drop=tuple(f"image_encoder.blocks.{i}." for i in range(6, 12))))
    with pytest.raises(CheckpointError, match=r"no_dec.pth' does not fit the vit_tiny SAM model: \d+ SAM tensors of the "
                                              r"model are missing from the file \(e.g. mask_decoder"):
        tiny(sam_checkpoint=edited(tmp_path, sd, "no_dec.pth", drop=("mask_decoder.",)))
    with pytest.raises(CheckpointError, match=r"1 tensors in the file have no place in the model \(e.g. extra.weight"):
        tiny(sam_checkpoint=edited(tmp_path, sd, "extra.pth", add={"extra.weight": torch.zeros(2)}))
    bad = {"mask_decoder.iou_token.weight": torch.zeros(1, 128)}
    with pytest.raises(CheckpointError, match=r"1 tensors have other shapes \(mask_decoder.iou_token.weight: expected "
                                              r"\(1, 256\), found \(1, 128\)\)"):
        tiny(sam_checkpoint=edited(tmp_path, sd, "shape.pth", add=bad))


def test_missing_truncated_and_unsafe_files(tiny_file, tmp_path):
    path, _ = tiny_file
    with pytest.raises(CheckpointError, match="nope.pth"):
        tiny(sam_checkpoint=str(tmp_path / "nope.pth"))
    cut = tmp_path / "cut.pth"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.pth"):
        tiny(sam_checkpoint=str(cut))
    torch.save({"w": torch.zeros(1), "x": Exception("code")}, tmp_path / "evil.pth")
    with pytest.raises(UnsafeCheckpointError, match="evil.pth"):  # read with sonokit's safe loader
        tiny(sam_checkpoint=str(tmp_path / "evil.pth"))


@pytest.fixture(scope="module")
def vit_file(tmp_path_factory):
    torch.manual_seed(0)
    vit = create_encoder("vit_tiny_patch16", img_size=64).eval()
    path = tmp_path_factory.mktemp("vit") / "encoder.safetensors"
    save_encoder(vit, path, {"encoder": "vit_tiny_patch16", "method": "rcl"})
    return path, vit


def test_a_sonokit_vit_initialises_the_sam_encoder(vit_file):
    path, vit = vit_file
    m = tiny(encoder_init=str(path), patch_stride=16).eval()
    enc, t = m.image_encoder, vit.model
    for i in (0, 7, 11):
        for ours, theirs in (("attn.qkv", "attn.qkv"), ("attn.proj", "attn.proj"), ("norm1", "norm1"),
                             ("norm2", "norm2"), ("mlp.lin1", "mlp.fc1"), ("mlp.lin2", "mlp.fc2")):
            a, b = enc.blocks[i].get_submodule(ours), t.blocks[i].get_submodule(theirs)
            assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias), (i, ours)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():  # the gray kernel, spread over SAM's normalised channels, computes the ViT's embedding
        assert torch.allclose(enc.patch_embed(enc.preprocess(x)), t.patch_embed.proj(x).permute(0, 2, 3, 1), atol=1e-4)
    rep = enc.init_report
    assert "cls_token" in rep["unused_in_file"] and "pos_embed" in rep["mapped"]
    assert {"blocks.2.attn.rel_pos_h", "neck.0.weight"} <= set(rep["not_initialised"])
    assert not any("adapter" in k for k in rep["not_initialised"])


def test_a_vit_of_another_width_is_refused(tmp_path):
    vit = create_encoder("vit_small_patch16", img_size=32)
    save_encoder(vit, tmp_path / "small.safetensors", {"encoder": "vit_small_patch16"})
    with pytest.raises(CheckpointError, match=r"'vit_small_patch16' with embed dim 384 and 12 blocks; the SAM image "
                                              r"encoder vit_tiny has 192 and 12; .*vit_b \(vit_base_patch16\)"):
        tiny(encoder_init=str(tmp_path / "small.safetensors"))
    torch.save(randomise(official_sam().state_dict()), tmp_path / "sam.pth")
    with pytest.raises(CheckpointError, match="holds no timm ViT"):
        tiny(encoder_init=str(tmp_path / "sam.pth"))


def test_a_vit_given_as_sam_checkpoint_says_to_use_encoder_init(vit_file):
    with pytest.raises(CheckpointError, match="holds no SAM image encoder .* give it as encoder_init instead"):
        tiny(sam_checkpoint=str(vit_file[0]))


def test_weight_files_are_init_only():
    kw = {"sam_checkpoint": "a.pth", "encoder_init": "b.safetensors", "fusion": "sf"}
    assert MODELS.rebuild_kwargs("sfrecsam", kw) == {"fusion": "sf"}
    assert MODELS.rebuild_kwargs("sam_adapter", kw | {"adapters": "none"}) == {"fusion": "sf", "adapters": "none"}


def test_the_official_vit_b_layout_loads(tmp_path):  # ~7 s on 2 busy cores
    from segment_anything import build_sam_vit_b

    torch.manual_seed(0)
    sd = build_sam_vit_b(checkpoint=None).state_dict()
    torch.save(sd, tmp_path / "sam_vit_b_01ec64.pth")
    del sd
    m = tiny(sam_variant="vit_b", img_size=256, sam_checkpoint=str(tmp_path / "sam_vit_b_01ec64.pth"))
    assert m.image_encoder.blocks[2].attn.rel_pos_h.shape == (63, 64)
    with pytest.raises(CheckpointError, match=r"holds a vit_b image encoder \(embed dim 768, 12 blocks\); the model "
                                              r"is vit_tiny \(192, 12\); set sam_variant: vit_b"):
        tiny(sam_checkpoint=str(tmp_path / "sam_vit_b_01ec64.pth"))
