"""Encoders: the shared interface, ViT weights from a local file, sizes, out_indices, spec and encoder_spec."""
import pytest
import timm
import torch
from timm.layers import resample_abs_pos_embed

from sonokit.errors import CheckpointError, ConfigError
from sonokit.models import ENCODERS, create_encoder, encoder_spec, list_encoders


@pytest.mark.parametrize("name", list_encoders())
def test_encoder_interface_and_spec_rebuild(name):
    params, var = ENCODERS.parameters(name)
    assert not var and {"in_chans", "weights", "img_size"} <= set(params)
    assert ENCODERS.rebuild_kwargs(name, {"weights": "w.pth", "in_chans": 1}) == {"in_chans": 1}
    with torch.device("meta"):  # no memory, no time: even ViT-L
        enc = create_encoder(name, img_size=64, in_chans=1)
        assert len(enc.out_channels) == len(enc.reductions) >= 1
        assert enc.spec["name"] == name and "weights" not in enc.spec
        again = create_encoder(**enc.spec)  # the spec rebuilds the same encoder
    assert again.spec == enc.spec
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in enc.state_dict().items()}


def test_cnn_accepts_and_ignores_img_size():
    a = create_encoder("resnet10t", img_size=100)
    assert a.spec == {"name": "resnet10t", "in_chans": 1} and a.reductions == [2, 4, 8, 16, 32]
    with torch.no_grad():
        assert [f.shape[-1] for f in a(torch.rand(1, 1, 40, 40))] == [20, 10, 5, 3, 2]


def test_vit_maps_out_indices_and_pruning():
    with torch.device("meta"):
        assert create_encoder("vit_large_patch16", img_size=32).out_indices == (5, 11, 17, 23)
    enc = create_encoder("vit_tiny_patch16", img_size=32, in_chans=2, out_indices=[1, -1]).eval()
    assert enc.out_indices == (1, 11) and enc.out_channels == [192, 192] and enc.reductions == [16, 16]
    enc = create_encoder("vit_tiny_patch16", img_size=32, out_indices=[0, 3]).eval()
    assert len(enc.model.blocks) == 4  # blocks after the last out_index, the final norm and the head are dropped
    assert not any(k.startswith(("model.blocks.4.", "model.norm.", "model.head.")) for k in enc.state_dict())
    with torch.no_grad():
        feats = enc(torch.rand(2, 1, 48, 80))  # not img_size: the position embedding is resampled
    assert [tuple(f.shape) for f in feats] == [(2, 192, 3, 5)] * 2
    with pytest.raises(ValueError, match="multiples of the patch size 16; found 40x56 .*e.g. to 32x48"):
        enc(torch.rand(1, 1, 40, 56))
    for bad, msg in (([12], r"12 is not a block of this 12-block ViT"), ([5, 2], "increasing"), ([], "non-empty")):
        with pytest.raises(ConfigError, match=msg):
            create_encoder("vit_tiny_patch16", img_size=32, out_indices=bad)


@pytest.mark.parametrize("size, msg", [(100, "img_size 100 is not a multiple of the patch size 16; use 96 or 112"),
                                       (8, "integer multiple of the patch size 16.*found 8"),
                                       ("64", "found '64'")])
def test_vit_img_size_must_be_a_multiple_of_16(size, msg):
    with pytest.raises(ConfigError, match=msg):
        create_encoder("vit_small_patch16", img_size=size)


def test_encoder_kwargs_are_checked_against_the_signature():
    with pytest.raises(ConfigError, match="unknown key 'img_szie' for encoder 'vit_tiny_patch16'; did you mean "
                                          "'img_size'\\? its parameters: img_size, in_chans, weights, out_indices, "
                                          "drop_path_rate"):
        ENCODERS.check_kwargs("vit_tiny_patch16", {"img_szie": 64})


@pytest.fixture(scope="module")
def official_vit_tiny(tmp_path_factory):
    """A randomly initialised timm vit_tiny_patch16_224 state dict: the official layout (3 channels, 224 px)."""
    torch.manual_seed(0)
    ref = timm.create_model("vit_tiny_patch16_224")
    path = tmp_path_factory.mktemp("weights") / "vit_tiny_patch16_224.pth"
    torch.save(ref.state_dict(), path)
    return ref, path


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_vit_weights_from_an_official_checkpoint_file(official_vit_tiny, fmt, tmp_path):
    ref, path = official_vit_tiny
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "vit.safetensors"
        save_file(ref.state_dict(), str(path))
    enc = create_encoder("vit_tiny_patch16", img_size=64, in_chans=1, weights=str(path))
    patch = enc.model.patch_embed.proj.weight  # (192, 1, 16, 16): RGB summed into one gray channel
    assert patch.shape == (192, 1, 16, 16)
    assert torch.allclose(patch[:, 0], ref.patch_embed.proj.weight.sum(1), atol=1e-5)
    pos = enc.model.pos_embed  # cls + the 4x4 grid of a 64-px input, resampled from 14x14
    assert pos.shape == (1, 1 + 4 * 4, 192)
    assert torch.allclose(pos, resample_abs_pos_embed(ref.pos_embed.detach(), (4, 4), num_prefix_tokens=1), atol=1e-5)
    assert torch.equal(enc.model.blocks[5].mlp.fc1.weight, ref.blocks[5].mlp.fc1.weight)
    assert enc.spec == {"name": "vit_tiny_patch16", "img_size": 64, "in_chans": 1, "out_indices": [2, 5, 8, 11],
                        "drop_path_rate": 0.0}


def test_vit_wrong_weights_file_is_a_checkpoint_error(official_vit_tiny, tmp_path):
    ref, _ = official_vit_tiny
    sd = dict(ref.state_dict())
    sd["blocks.3.attn.qkv.weight"] = torch.zeros(576, 96)  # e.g. another width
    torch.save(sd, tmp_path / "wrong.pth")
    msg = (r"weights '.*wrong\.pth' do not fit encoder 'vit_tiny_patch16'.*"
           r"blocks\.3\.attn\.qkv\.weight: expected \(576, 192\), found \(576, 96\)")
    with pytest.raises(CheckpointError, match=msg):
        create_encoder("vit_tiny_patch16", img_size=64, weights=str(tmp_path / "wrong.pth"))
    torch.save(timm.create_model("resnet10t").state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError, match=r"resnet\.pth' do not fit .*150 missing keys \(e\.g\. cls_token"):
        create_encoder("vit_tiny_patch16", img_size=64, weights=str(tmp_path / "resnet.pth"))
    with pytest.raises(CheckpointError, match="encoder weights '.*nope.pth' do not exist"):
        create_encoder("vit_tiny_patch16", weights=str(tmp_path / "nope.pth"))


def test_encoder_spec_of_a_model_spec():
    assert encoder_spec({"name": "resunet_resnet18"}) == {"name": "resnet18", "in_chans": 1}
    assert encoder_spec("classifier") == {"name": "resnet18", "in_chans": 1}
    spec = encoder_spec({"name": "unet", "encoder": "vit_tiny_patch16", "img_size": 64,
                         "encoder_weights": "/not/read.pth", "encoder_checkpoint": "/not/read.safetensors"})
    assert spec == {"name": "vit_tiny_patch16", "img_size": 64, "in_chans": 1, "out_indices": [2, 5, 8, 11],
                    "drop_path_rate": 0.0}
    assert encoder_spec({"name": "upernet", "encoder": "vit_large_patch16", "img_size": 128, "in_chans": 3,
                         "encoder_kwargs": {"out_indices": [23]}})["out_indices"] == [23]
    with pytest.raises(ConfigError, match="unknown key 'model.encdoer' for model 'unet'; did you mean 'encoder'"):
        encoder_spec({"name": "unet", "encdoer": "resnet50"})
    with pytest.raises(ConfigError, match="must be a mapping"):
        encoder_spec({"encoder": "resnet50"})
