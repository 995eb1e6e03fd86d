"""A-ViT: the deformable sampling of the ACDT block against hand-made cases and a depthwise convolution, the
organ conditioning (one-hot, predicted, refused), and A-ViT as an encoder of sonokit's models."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sonokit.errors import ConfigError
from sonokit.models import create_encoder, create_model
from sonokit.models.avit import ACDTBlock, AViT, acdt_indices, deformable_sample
from sonokit.models.avit.acdt import kernel_taps


def test_zero_offsets_with_one_tap_is_the_identity_and_a_whole_token_offset_shifts():
    x = torch.randn(2, 3, 4, 5)
    taps = kernel_taps(1)
    zero = torch.zeros(2, 1, 2, 4, 5)
    assert torch.allclose(deformable_sample(x, zero, taps)[:, :, 0], x, atol=1e-6)
    right = zero.clone()
    right[:, :, 0] = 1.0  # dx = +1 token: each token reads its right neighbour, zeros past the edge
    s = deformable_sample(x, right, taps)[:, :, 0]
    assert torch.allclose(s[..., :-1], x[..., 1:], atol=1e-6) and s[..., -1].abs().max() == 0
    half = zero.clone()
    half[:, :, 1] = 0.5  # dy = +0.5: the mean of the token and the one below (bilinear)
    s = deformable_sample(x, half, taps)[:, :, 0]
    assert torch.allclose(s[:, :, :-1], 0.5 * (x[:, :, :-1] + x[:, :, 1:]), atol=1e-6)


def test_zero_offsets_with_a_3x3_kernel_are_a_depthwise_convolution():
    torch.manual_seed(0)
    C = 4
    x = torch.randn(2, C, 6, 7)
    w = torch.randn(C, 9)
    s = deformable_sample(x, torch.zeros(2, 9, 2, 6, 7), kernel_taps(3))  # (B, C, 9, h, w)
    y = torch.einsum("bckhw,ck->bchw", s, w)
    ref = F.conv2d(x, w.view(C, 1, 3, 3), padding=1, groups=C)
    assert torch.allclose(y, ref, atol=1e-5)


def _block(seed=0, n_organs=4, **kw) -> ACDTBlock:
    torch.manual_seed(seed)
    blk = ACDTBlock(32, 4, n_organs=n_organs, **kw).eval()
    torch.nn.init.normal_(blk.offsets.net[-1].weight, std=0.5)  # a trained-like offset net (zero at init)
    return blk


def test_offsets_depend_on_the_organ_and_stay_in_range():
    blk = _block(offset_range=1.5)
    x = torch.randn(2, 1 + 16, 32)
    organ_a = F.one_hot(torch.tensor([0, 0]), 4).float()
    organ_b = F.one_hot(torch.tensor([3, 3]), 4).float()
    ya = blk(x, organ_a, (4, 4))
    off_a = blk.last_offsets
    yb = blk(x, organ_b, (4, 4))
    assert off_a.shape == (2, 9, 2, 4, 4) and off_a.abs().max() <= 1.5
    assert (off_a - blk.last_offsets).abs().max() > 1e-3 and (ya - yb).abs().max() > 1e-4
    assert torch.allclose(blk(x, organ_a, (4, 4)), ya)  # deterministic
    # at initialisation the offset net outputs zero: every organ samples the regular kernel taps
    fresh = ACDTBlock(32, 4, n_organs=4)
    fresh(x, organ_a, (4, 4))
    assert fresh.last_offsets.abs().max() == 0


def test_the_block_trains_end_to_end():
    blk = _block().train()
    x = torch.randn(2, 1 + 16, 32, requires_grad=True)
    out = blk(x, F.one_hot(torch.tensor([1, 2]), 4).float(), (4, 4))
    out.square().mean().backward()
    for name in ("context.weight", "offsets.net.0.weight", "tap_weight", "q.weight", "kv.weight", "mlp.fc1.weight"):
        assert blk.get_parameter(name).grad.abs().sum() > 0, name
    assert x.grad.shape == x.shape


def test_unknown_organ_uses_the_heads_probabilities():
    torch.manual_seed(0)
    m = AViT(img_size=32, embed_dim=32, depth=2, num_heads=2, n_organs=5, acdt_blocks=[1]).eval()
    x = torch.rand(3, 1, 32, 32)
    organ = torch.tensor([2, -1, -1])
    t, grid = m.embed(x)
    t = m.blocks[0](t)
    dist = m.organ_distribution(t, organ)
    assert torch.equal(dist[0], F.one_hot(torch.tensor(2), 5).float())
    assert torch.allclose(dist[1:], m.organ_logits[1:].softmax(-1)) and torch.allclose(dist.sum(1), torch.ones(3))
    # the probability-weighted context: AC of the distribution equals the weighted mean of the organs' ACs
    lin = m.blocks[1].context
    per_organ = lin(torch.eye(5))
    assert torch.allclose(lin(dist[1:]), dist[1:] @ per_organ, atol=1e-5)
    assert m.forward_features(x, organ).shape == (3, 1 + 4, 32) and m.organ_logits.shape == (3, 5)
    with pytest.raises(ConfigError, match="outside the 5-organ vocabulary"):
        m(x, torch.tensor([0, 1, 7]))
    blind = AViT(img_size=32, embed_dim=32, depth=2, num_heads=2, n_organs=5, organ_head=False)
    blind(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ConfigError, match="unknown and this A-ViT has no organ head"):
        blind(x, torch.tensor([0, -1, 2]))


def test_acdt_block_choice():
    assert acdt_indices("all", 4) == (0, 1, 2, 3) and acdt_indices("last_half", 4) == (2, 3)
    assert acdt_indices("none", 4) == () and acdt_indices([1, -1], 4) == (1, 3)
    with pytest.raises(ConfigError, match="acdt_blocks 'most'"):
        acdt_indices("most", 4)
    plain = AViT(img_size=32, embed_dim=32, depth=2, num_heads=2, acdt_blocks="none")
    assert plain.organ_head is None and not any(isinstance(b, ACDTBlock) for b in plain.blocks)


def test_avit_is_an_encoder_of_every_model_and_takes_the_organ():
    torch.manual_seed(0)
    enc = create_encoder("avit_tiny_patch16", img_size=64, acdt_blocks="last_half")
    x = torch.rand(2, 1, 64, 64)
    maps = enc(x, torch.tensor([0, -1]))
    assert [tuple(f.shape) for f in maps] == [(2, 192, 4, 4)] * 4 and enc.organ_logits.shape == (2, 16)
    assert [tuple(f.shape[-2:]) for f in enc(torch.rand(1, 1, 96, 80))] == [(6, 5)] * 4  # other sizes
    rebuilt = create_encoder(**enc.spec)
    assert rebuilt.spec == enc.spec
    seg = create_model("upernet", encoder="avit_tiny_patch16", img_size=64,
                       encoder_kwargs={"acdt_blocks": [9, 10, 11]}).eval()
    for blk in seg.encoder.model.blocks[9:]:
        torch.nn.init.normal_(blk.offsets.net[-1].weight, std=0.5)
    with torch.no_grad():
        a, b = seg(x, torch.tensor([0, 0])), seg(x, torch.tensor([6, 6]))
    assert a.shape == (2, 1, 64, 64) and (a - b).abs().max() > 1e-4  # the organ changes the prediction
    from sonokit.tasks.supervised import model_inputs

    assert model_inputs(seg) == ("organ",) and model_inputs(create_model("upernet", encoder="resnet10t")) == ()
    cls = create_model("classifier", encoder="avit_tiny_patch16", img_size=64, num_classes=3)
    assert cls(x).shape == (2, 3)
    with pytest.raises(ConfigError, match="no timm weights"):
        create_encoder("avit_tiny_patch16", img_size=64, weights="x.pth")


def test_inference_takes_the_organ_by_name(tmp_path):
    from sonokit.inference import Classifier, Segmenter

    torch.manual_seed(0)
    seg_model = create_model("upernet", encoder="avit_tiny_patch16", img_size=32,
                             encoder_kwargs={"acdt_blocks": [11]}).eval()
    torch.nn.init.normal_(seg_model.encoder.model.blocks[11].offsets.net[-1].weight, std=0.5)
    hp = {"data": {"organs": None}, "image_size": 32}
    from sonokit.inference.organ import resolve_organ

    breast, heart = resolve_organ("breast", hp, seg_model), resolve_organ("heart", hp, seg_model)
    im = torch.rand(40, 50).numpy()
    dev = torch.device("cpu")
    a = Segmenter(seg_model, 32, hp, dev, organ=breast).predict(im)
    b = Segmenter(seg_model, 32, hp, dev, organ=heart).predict(im)
    c = Segmenter(seg_model, 32, hp, dev).predict(im)  # predicted organ
    assert a.shape == (40, 50) and abs(a - b).max() > 1e-5 and abs(a - c).max() > 0
    with pytest.raises(ConfigError, match="not in this model's organ vocabulary; known organs: breast, thyroid"):
        resolve_organ("brest", hp, seg_model)
    with pytest.raises(ConfigError, match="does not read the organ"):
        resolve_organ("breast", hp, create_model("upernet", encoder="resnet10t"))
    cls = create_model("classifier", encoder="avit_tiny_patch16", img_size=32, num_classes=2).eval()
    p = Classifier(cls, 32, ["a", "b"], hp, dev, organ=breast).predict(im)
    assert p.shape == (2,) and abs(p.sum() - 1) < 1e-5


def test_training_says_when_images_name_no_organ(tmp_path):
    import sonokit
    from tests.conftest import make_phantom

    d = make_phantom(tmp_path, n=12, size=32)  # the phantom's anatomy is 'phantom', outside this vocabulary
    cfg = sonokit.load_config(None, [f"data.root={d / 'ph'}", f"data.split={d / 'split.json'}", "data.image_size=32",
                                     "data.batch_size=4", "data.organs=[breast, thyroid]", "model.name=upernet",
                                     "model.encoder=avit_tiny_patch16", "model.encoder_kwargs={acdt_blocks: [11]}",
                                     "optim.max_steps=1", f"out_dir={tmp_path / 'run'}", "trainer.progress=none"],
                              task="segment")
    logs: list[str] = []
    run = sonokit.fit(cfg, log=logs.append)
    assert any("train / val images name no organ" in ln and "predicts" in ln for ln in logs), logs
    from sonokit.serialization import load_checkpoint

    hp = load_checkpoint(run / "checkpoints" / "last.ckpt")["hyper_parameters"]
    assert hp["model_kwargs"]["encoder_kwargs"]["n_organs"] == 2  # the encoder follows the vocabulary's size


@pytest.mark.parametrize("name,dim,depth,params_m", [("avit_base_patch16", 768, 12, 86), ("avit_large_patch16", 1024, 24, 304)])
def test_paper_scale_variants_have_vit_widths(name, dim, depth, params_m):
    with torch.device("meta"):  # shapes only: nothing allocated
        enc = create_encoder(name, img_size=224, acdt_blocks="last_half")
    assert enc.out_channels == [dim] * 4 and len(enc.model.blocks) == depth
    assert sum(isinstance(b, ACDTBlock) for b in enc.model.blocks) == depth // 2
    n = sum(p.numel() for p in enc.parameters()) / 1e6
    assert params_m < n < params_m * 1.15  # ViT-B/16 86M, ViT-L/16 304M, plus the ACDT blocks' extras
