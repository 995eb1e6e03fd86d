"""SF-RecSAM on another image encoder (A-ViT, ResNet): shapes, the organ, gradients, weights, errors."""
import pytest
import torch

from sonokit.errors import CheckpointError, ConfigError
from sonokit.models import create_encoder, create_model
from sonokit.models.sam.any_encoder import EncoderEmbedding
from sonokit.runs.pretrain import save_encoder

from ._util import official_sam, randomise

AVIT = dict(image_encoder="avit_tiny_patch16", img_size=64,
            image_encoder_kwargs={"acdt_blocks": "last_half", "n_organs": 4})


def model(seed=0, **kw):
    torch.manual_seed(seed)
    return create_model("sfrecsam", **(AVIT | dict(mc_samples=2) | kw))


def test_an_avit_gives_sams_decoder_its_embedding_and_reads_the_organ():
    m = model()
    assert isinstance(m.image_encoder, EncoderEmbedding) and m.image_encoder.grid == 4  # 64 px / 16
    for blk in m.image_encoder.encoder.model.blocks:  # offsets start at zero; give them weights, as training does
        if hasattr(blk, "offsets"):
            torch.nn.init.normal_(blk.offsets.net[-1].weight, std=0.05)
    assert m.batch_inputs == ("mask", "organ")
    m.eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        emb = m.image_encoder(x, torch.tensor([0, 1]))
        assert emb.shape == (2, 256, 4, 4)
        a, b = m(x, organ=torch.tensor([0, 0])), m(x, organ=torch.tensor([3, 3]))
        unknown = m(x)  # no organ: the A-ViT's organ head predicts it
    assert a["logits"].shape == (2, 1, 64, 64) and a["boxes"].shape == (2, 4)
    assert {"coarse_logits", "initial_logits", "uncertainty", "fp_logits", "fn_logits"} <= set(a)
    # the organ reaches the deformable blocks: another organ, other offsets, another embedding
    assert not torch.allclose(a["coarse_logits"], b["coarse_logits"])
    assert torch.isfinite(unknown["logits"]).all()


def test_every_trainable_part_gets_a_gradient_in_training():
    m = model(corrector="none", mc_samples=0)
    m.train()
    x, mask = torch.rand(2, 1, 64, 64), (torch.rand(2, 1, 64, 64) > 0.5).float()
    out = m(x, mask=mask, organ=torch.tensor([1, -1]))
    (out["logits"].mean() + out["coarse_logits"].mean()).backward()
    # the fusion's gate starts with no effect (zero projection); the organ head only takes unknown organs
    no_grad = [n for n, p in m.named_parameters() if p.grad is None]
    assert not [n for n in no_grad if n.startswith(("image_encoder.neck", "image_encoder.encoder.model.blocks",
                                                     "mask_decoder.transformer"))], no_grad
    assert m.image_encoder.encoder.model.patch_embed.proj.weight.grad.abs().sum() > 0


def test_a_resnet_works_too_at_its_own_stride():
    torch.manual_seed(0)
    m = create_model("sfrecsam", image_encoder="resnet10t", img_size=128, fusion="spatial", corrector="none",
                     mc_samples=0)
    assert m.image_encoder.grid == 4 and m.batch_inputs == ("mask",)  # stride 32; a ResNet takes no organ
    assert m.eval()(torch.rand(1, 1, 96, 80))["logits"].shape == (1, 1, 96, 80)  # resized to 128 and back


def test_pretrained_avit_and_sam_decoder_load(tmp_path):
    torch.manual_seed(1)
    enc = create_encoder("avit_tiny_patch16", img_size=64, acdt_blocks="last_half", n_organs=4)
    path = save_encoder(enc, tmp_path / "encoder.safetensors", {"encoder": "avit_tiny_patch16"})
    sam_sd = randomise(official_sam("vit_tiny").state_dict())
    torch.save(sam_sd, tmp_path / "sam.pth")
    m = model(encoder_init=str(path), sam_checkpoint=str(tmp_path / "sam.pth"))
    got = m.image_encoder.encoder.state_dict()
    assert all(torch.equal(v, got[k]) for k, v in enc.state_dict().items())
    sd = m.state_dict()
    for k in ("mask_decoder.output_upscaling.0.weight", "prompt_encoder.point_embeddings.0.weight"):
        assert torch.equal(sd[k], sam_sd[k])
    # the weight files are init-only: the rebuilt model (inference) does not read them again
    again = model()
    assert not torch.equal(again.state_dict()["mask_decoder.output_upscaling.0.weight"], sam_sd[
        "mask_decoder.output_upscaling.0.weight"])


def test_bad_combinations_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="cnn_branch / hf_input belong to SAM's image encoder"):
        model(cnn_branch=True)
    with pytest.raises(ConfigError, match="image_encoder_kwargs / image_encoder_checkpoint are for"):
        create_model("sfrecsam", sam_variant="vit_tiny", img_size=64, image_encoder_kwargs={"acdt_blocks": "all"})
    with pytest.raises(ConfigError, match="img_size 40 is not a multiple of the patch size 16"):
        model(img_size=40)
    with pytest.raises(ConfigError, match="'avit_tiny_patch16''s stride 16 giving a token grid of at least 4x4 "
                                          "\\(img_size >= 64\\); found 48"):
        model(img_size=48)
    with pytest.raises(ConfigError, match="avit_tinny"):
        model(image_encoder="avit_tinny")
    torch.save({"mask_decoder.iou_token.weight": torch.zeros(1, 256)}, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="partial.pth' lacks .* prompt-encoder / mask-decoder tensors"):
        model(sam_checkpoint=str(tmp_path / "partial.pth"))
