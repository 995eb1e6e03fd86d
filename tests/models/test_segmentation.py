"""Segmentation models: any encoder x any decoder, the Res-UNet's compatibility, necks, config errors."""
import hashlib

import pytest
import torch

from sonokit.errors import CheckpointError, ConfigError
from sonokit.models import MODELS, SegmentationModel, create_model, list_models
from sonokit.models.necks import SimplePyramidNeck

from ._util import assert_every_param_gets_grad, encoder_params

SMALL = {"unet": dict(decoder_channels=(16, 16, 16, 16, 16)), "upernet": dict(channels=16)}


# -- copied from tests/test_models_metrics.py (model tests) ------------------------------------------------------
@pytest.mark.parametrize("name", ["resunet_resnet10t", "resunet_resnet18"])
def test_model_forward_backward_all_params_get_grad(name):
    torch.manual_seed(0)
    m = create_model(name, decoder_channels=(32, 16, 16, 8, 8))
    x = torch.rand(2, 1, 40, 56)  # not a multiple of 32
    y = assert_every_param_gets_grad(m, x)
    assert y.shape == (2, 1, 40, 56)


def test_every_registered_model_builds():
    small = {"decoder_channels": (16, 16, 16, 16, 16), "channels": 16, "sam_variant": "vit_tiny"}
    for name in list_models():
        params, _ = MODELS.parameters(name)
        m = create_model(name, **{k: v for k, v in small.items() if k in params}).eval()
        with torch.no_grad():
            y = m(torch.rand(1, 1, 64, 64))
        y = y["logits"] if isinstance(y, dict) else y  # the task contract: a tensor or named outputs
        assert y.shape == ((1, 2) if name == "classifier" else (1, 1, 64, 64)), name


def test_encoder_checkpoint_roundtrip_and_mismatch(tmp_path):
    a = create_model("resunet_resnet10t")
    torch.save({"encoder": a.encoder.state_dict()}, tmp_path / "enc.pt")
    b = create_model("resunet_resnet10t", encoder_checkpoint=str(tmp_path / "enc.pt"))
    for (k, v), (_, w) in zip(a.encoder.state_dict().items(), b.encoder.state_dict().items()):
        assert torch.equal(v, w), k
    with pytest.raises(CheckpointError, match="does not fit encoder 'resnet18'"):
        create_model("resunet_resnet18", encoder_checkpoint=str(tmp_path / "enc.pt"))
    with pytest.raises(CheckpointError, match="do not exist"):
        create_model("resunet_resnet18", encoder_weights=str(tmp_path / "nope.pth"))


def test_encoder_imagenet_style_weights_from_local_file(tmp_path):
    import timm

    ref = timm.create_model("resnet10t", num_classes=1000)  # a 3-channel "ImageNet" checkpoint
    torch.save(ref.state_dict(), tmp_path / "r10t.pth")
    m = create_model("resunet_resnet10t", encoder_weights=str(tmp_path / "r10t.pth"))
    stem = m.encoder.model.conv1[0].weight  # (32, 1, 3, 3): RGB summed into one gray channel
    assert stem.shape[1] == 1
    assert torch.allclose(stem[:, 0], ref.conv1[0].weight.sum(1), atol=1e-5)


def test_encoder_weights_that_do_not_fit_are_an_error(tmp_path):
    """timm loads a CNN's weights non-strictly: a file of another architecture (or missing tensors) would leave
    random weights without a word; every key but the ImageNet classifier (fc.*) must fit."""
    import timm

    torch.save(timm.create_model("vit_tiny_patch16_224", num_classes=0).state_dict(), tmp_path / "vit.pth")
    with pytest.raises(CheckpointError, match=r"vit\.pth' do not fit timm model 'resnet10t'.*missing keys \(e\.g\. "
                                              r"conv1\..*unexpected keys \(e\.g\. cls_token"):
        create_model("resunet_resnet10t", encoder_weights=str(tmp_path / "vit.pth"))
    sd = timm.create_model("resnet10t", num_classes=1000).state_dict()
    del sd["layer4.0.bn2.weight"]
    torch.save(sd, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"partial\.pth' do not fit .*1 missing keys \(e\.g\. layer4\.0\.bn2\.weight\)"):
        create_model("resunet_resnet10t", encoder_weights=str(tmp_path / "partial.pth"))


# -- any encoder fits any decoder -------------------------------------------------------------------------------
@pytest.mark.parametrize("decoder", ["unet", "upernet"])
@pytest.mark.parametrize("encoder", encoder_params())
def test_any_encoder_fits_any_decoder(encoder, decoder):
    torch.manual_seed(0)
    m = create_model(decoder, encoder=encoder, img_size=64, num_classes=2, neck_channels=16, **SMALL[decoder])
    y = assert_every_param_gets_grad(m, torch.rand(2, 1, 64, 64))
    assert y.shape == (2, 2, 64, 64)
    y = m(torch.rand(2, 1, 96, 96))  # another size than img_size (a ViT resamples its position embedding)
    assert y.shape == (2, 2, 96, 96) and torch.isfinite(y).all()
    y.square().mean().backward()


def test_upernet_logits_at_stride_4_upsampled_to_any_input_size():
    m = create_model("upernet", encoder="resnet10t", channels=16).eval()
    assert m.decoder.reduction == 4 and m.head.kernel_size == (1, 1)
    x = torch.rand(1, 1, 40, 56)  # not a multiple of 32
    with torch.no_grad():
        feats = m.encoder(x)
        assert m.decoder(feats, (40, 56)).shape == (1, 16, 10, 14)
        assert m(x).shape == (1, 1, 40, 56)


# -- the Res-UNet keeps today's checkpoints -----------------------------------------------------------------------
# keys of resunet_resnet18 / resunet_resnet10t at the commit before the encoder/decoder registries (d07b928)
RESUNET_KEYS = {
    "resunet_resnet18": (182, "197f37e5267732edab8527d1b9e3b62d4634737a2238e1ec0157a82adb81ea91", {
        "encoder.model.conv1.weight": (64, 1, 7, 7), "encoder.model.layer4.0.bn2.weight": (512,),
        "decoder.blocks.0.conv.0.0.weight": (256, 768, 3, 3), "decoder.blocks.4.conv.1.1.running_var": (16,),
        "head.weight": (1, 16, 3, 3), "head.bias": (1,)}),
    "resunet_resnet10t": (146, "9db680c4b6b187bab5e116731652774b72a3fcbc282989f14e643e2838c03d03", {
        "encoder.model.conv1.0.weight": (24, 1, 3, 3), "encoder.model.conv1.1.num_batches_tracked": (),
        "decoder.blocks.0.conv.0.0.weight": (256, 768, 3, 3), "decoder.blocks.4.conv.1.1.running_var": (16,),
        "head.weight": (1, 16, 3, 3), "head.bias": (1,)}),
}


@pytest.mark.parametrize("name", sorted(RESUNET_KEYS))
def test_resunet_state_dict_keys_unchanged(name):
    n, digest, sample = RESUNET_KEYS[name]
    with torch.device("meta"):
        sd = create_model(name).state_dict()
    keys = list(sd)
    assert len(keys) == n and hashlib.sha256("\n".join(keys).encode()).hexdigest() == digest
    assert {k: tuple(sd[k].shape) for k in sample} == sample
    assert all(k.split(".")[0] in ("encoder", "decoder", "head") for k in keys)


def test_resunet_is_unet_with_its_encoder_fixed():
    params, var = MODELS.parameters("resunet_resnet10t")
    assert "encoder" not in params and not var
    assert params == [p for p in MODELS.parameters("unet")[0] if p != "encoder"]
    torch.manual_seed(0)
    a = create_model("resunet_resnet10t", decoder_channels=[16, 16, 8, 8, 8]).state_dict()
    torch.manual_seed(0)
    b = create_model("unet", encoder="resnet10t", decoder_channels=(16, 16, 8, 8, 8)).state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


# -- necks -----------------------------------------------------------------------------------------------------
def test_neck_auto_none_and_pyramid():
    with torch.device("meta"):
        assert create_model("unet", encoder="resnet10t").neck is None  # multi-scale: no neck
        vit = create_model("unet", encoder="vit_tiny_patch16", img_size=64, neck_channels=32)
        assert isinstance(vit.neck, SimplePyramidNeck) and vit.neck.reductions == [4, 8, 16, 32]
        assert create_model("upernet", encoder="vit_tiny_patch16", img_size=64, neck="pyramid").neck is not None
        with pytest.raises(ConfigError, match="needs feature maps at several strides.*all at stride 16.*pyramid"):
            create_model("unet", encoder="vit_tiny_patch16", img_size=64, neck="none")
        with pytest.raises(ConfigError, match="same stride.*found strides \\[2, 4, 8, 16, 32\\]"):
            create_model("unet", encoder="resnet10t", neck="pyramid")
        with pytest.raises(ConfigError, match="neck must be one of auto, none, pyramid; found 'fpn'"):
            create_model("unet", encoder="resnet10t", neck="fpn")
    # UPerNet runs on a plain ViT's stride-16 maps without a neck; its logits are upsampled
    m = create_model("upernet", encoder="vit_tiny_patch16", img_size=32, neck="none", channels=8,
                     encoder_kwargs={"out_indices": [1, 3]}).eval()
    assert m.neck is None and m.decoder.reduction == 16
    with torch.no_grad():
        assert m(torch.rand(1, 1, 32, 48)).shape == (1, 1, 32, 48)


def test_segmentation_model_composes_any_parts():
    from sonokit.models import DECODERS, create_encoder

    enc = create_encoder("resnet10t")
    dec = DECODERS.create("upernet", encoder_channels=enc.out_channels, reductions=enc.reductions, channels=8)
    m = SegmentationModel(enc, dec, num_classes=3).eval()
    with torch.no_grad():
        assert m(torch.rand(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"expected input of shape \(B, C, H, W\), found \(1, 32, 32\)"):
        m(torch.rand(1, 32, 32))


# -- config errors ---------------------------------------------------------------------------------------------
def test_misspelt_model_key_names_the_parameters():
    msg = (r"unknown key 'decoder_chanels' for model 'unet'; did you mean 'decoder_channels'\? its parameters: "
           r"encoder, in_chans, num_classes, img_size, encoder_weights, encoder_checkpoint, encoder_kwargs, "
           r"decoder_channels, neck, neck_channels")
    with pytest.raises(ConfigError, match=msg):
        MODELS.check_kwargs("unet", {"decoder_chanels": [16, 16]})
    with pytest.raises(ConfigError, match=msg):
        create_model("unet", decoder_chanels=[16, 16])
    with pytest.raises(ConfigError, match="unknown key 'model.encoder' for model 'resunet_resnet18'"):
        MODELS.check_kwargs("resunet_resnet18", {"encoder": "resnet50"}, where="model.")
    with pytest.raises(ConfigError, match="unknown key 'pool_scale' for model 'upernet'; did you mean 'pool_scales'"):
        create_model("upernet", pool_scale=[1, 2])
    with pytest.raises(ConfigError, match="unknown key 'encoder_kwargs.out_indice' for encoder 'vit_tiny_patch16'; "
                                          "did you mean 'out_indices'"):
        create_model("unet", encoder="vit_tiny_patch16", encoder_kwargs={"out_indice": [11]})
    with pytest.raises(ConfigError, match="encoder_kwargs.weights is set by the model's own 'encoder_weights'"):
        create_model("unet", encoder_kwargs={"weights": "x.pth"})
    with pytest.raises(ConfigError, match="unknown encoder 'vit_tiny_patch61'; did you mean 'vit_tiny_patch16'"):
        create_model("upernet", encoder="vit_tiny_patch61")
    with pytest.raises(ConfigError, match="decoder_channels must be a list of at least 1 positive integers; found"):
        create_model("unet", encoder="resnet10t", decoder_channels="16")
    assert MODELS.rebuild_kwargs("unet", {"encoder_weights": "a", "encoder_checkpoint": "b", "neck": "auto"}) == \
        {"neck": "auto"}


def test_yaml_lists_work_where_tuples_do():
    with torch.device("meta"):
        m = create_model("upernet", encoder="vit_tiny_patch16", img_size=32, pool_scales=[1, 2],
                         encoder_kwargs={"out_indices": [2, 5, 8, 11]})
        assert len(m.decoder.ppm.stages) == 2
        assert create_model("unet", decoder_channels=[16, 16, 16, 16, 16]).decoder.out_channels == 16
