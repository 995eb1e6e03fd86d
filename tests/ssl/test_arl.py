"""A-ViT's pretraining (method ``arl``): each objective against a direct computation, the adaptive weight, the
views, and a tiny `sonokit pretrain` run that resumes with its teacher, discriminator and λ trace."""
from __future__ import annotations

import pytest
import torch
import yaml
from typer.testing import CliRunner

from sonokit.cli import app
from sonokit.errors import ConfigError
from sonokit.serialization import load_checkpoint
from sonokit.ssl.arl.objectives import (
    PixelDecoder,
    adaptive_weight,
    discriminator_loss,
    generator_loss,
    mim_loss,
    multi_crop,
    patchify,
    random_patch_mask,
)

from ..conftest import ok

runner = CliRunner()


def test_patchify_and_mask():
    x = torch.arange(2 * 1 * 4 * 6, dtype=torch.float32).view(2, 1, 4, 6)
    p = patchify(x, 2)
    assert p.shape == (2, 6, 4) and p[0, 1].tolist() == [2, 3, 8, 9]  # second patch of the first row
    g = torch.Generator().manual_seed(0)
    m = random_patch_mask(3, 10, 0.6, g)
    assert m.dtype == torch.bool and m.sum(1).tolist() == [6, 6, 6]
    assert random_patch_mask(2, 4, 0.99, g).sum(1).tolist() == [3, 3]  # never every patch
    m2 = random_patch_mask(3, 10, 0.6, torch.Generator().manual_seed(0))
    assert torch.equal(m, m2)


def test_mim_loss_is_the_masked_patches_mean_squared_norm():
    pred, target = torch.zeros(1, 3, 4), torch.zeros(1, 3, 4)
    target[0, 0] = 1.0  # masked: error 4
    target[0, 1] = 2.0  # not masked: ignored
    target[0, 2] = 0.5  # masked: error 1
    mask = torch.tensor([[True, False, True]])
    assert mim_loss(pred, target, mask).item() == pytest.approx((4 + 1) / 2)


def test_adversarial_losses_and_the_adaptive_weight():
    d = torch.tensor([0.0, 2.0])
    assert generator_loss(d).item() == pytest.approx(float(-(torch.sigmoid(d)).log().mean()))
    assert discriminator_loss(d, -d).item() == pytest.approx(float(-torch.sigmoid(d).log().mean()
                                                                   - (1 - torch.sigmoid(-d)).log().mean()))
    torch.manual_seed(0)
    dec = PixelDecoder(8, 2)
    tok = torch.randn(2, 5, 8)
    out = dec(tok)
    l_mim, l_adv = out.square().mean(), 3.0 * out.mean()
    lam = adaptive_weight(l_mim, l_adv, dec.last.weight, eps=0.0)
    gm = torch.autograd.grad(l_mim, dec.last.weight, retain_graph=True)[0]
    ga = torch.autograd.grad(l_adv, dec.last.weight, retain_graph=True)[0]
    assert lam.item() == pytest.approx((gm.norm() / ga.norm()).item(), rel=1e-5) and not lam.requires_grad
    # λ L_adv then has the same gradient norm at that layer as L_MIM: the two are balanced
    g = torch.autograd.grad(lam * l_adv, dec.last.weight, retain_graph=True)[0]
    assert g.norm().item() == pytest.approx(gm.norm().item(), rel=1e-4)
    assert adaptive_weight(l_mim, 1e-9 * out.mean(), dec.last.weight, max_value=50.0).item() == 50.0


def test_multi_crop_views_are_seeded():
    x = torch.rand(3, 1, 64, 64)
    gl, lo = multi_crop(x, n_global=2, global_size=64, global_scale=(0.4, 1.0), n_local=3, local_size=32,
                        local_scale=(0.1, 0.4), generator=torch.Generator().manual_seed(1))
    assert [v.shape for v in gl] == [(3, 1, 64, 64)] * 2 and [v.shape for v in lo] == [(3, 1, 32, 32)] * 3
    gl2, _ = multi_crop(x, n_global=2, global_size=64, global_scale=(0.4, 1.0), n_local=3, local_size=32,
                        local_scale=(0.1, 0.4), generator=torch.Generator().manual_seed(1))
    assert torch.equal(gl[0], gl2[0]) and not torch.equal(gl[0], gl[1])
    from sonokit.ssl.arl.objectives import random_boxes

    boxes = random_boxes(500, 40, 60, (0.1, 0.4), torch.Generator().manual_seed(3))
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (40 * 60)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 60 + 1e-4).all() and (boxes[:, 3] <= 40 + 1e-4).all()
    assert area.max() <= 0.4 + 1e-5 and area.min() >= 0.1 * 0.75 and area.mean() == pytest.approx(0.25, abs=0.03)


def test_option_checks():
    from sonokit.ssl.arl import ARLPretraining

    for kw, match in [({"mim": False, "adversarial": False, "distill": False}, "all off"),
                      ({"mim": False}, "needs mim: true"), ({"mask_ratio": 1.0}, "mask_ratio"),
                      ({"local_size": 40}, "multiple of the A-ViT patch size")]:
        with pytest.raises(ConfigError, match=match):
            ARLPretraining.check_options(image_size=64, **kw)
    with pytest.raises(ConfigError, match="needs an A-ViT encoder"):
        ARLPretraining(encoder={"name": "resnet10t"}, image_size=64)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    d = tmp_path_factory.mktemp("arl")
    ok(runner.invoke(app, ["simulate", "phantom", "--out", str(d / "ph"), "--n", "8", "--size", "48", "--seed", "0"]))
    cfg = {"task": "pretrain", "name": "arl_tiny", "out_dir": str(d / "run"),
           "data": {"root": str(d / "ph"), "image_size": 32, "batch_size": 4},
           "encoder": {"name": "avit_tiny_patch16", "acdt_blocks": [10, 11]},
           "method": {"name": "arl", "out_dim": 64, "hidden_dim": 32, "bottleneck_dim": 16, "n_local": 1,
                      "local_size": 16, "adv_patches": 16},
           "optim": {"epochs": 1}, "trainer": {"progress": "none"}}
    (d / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    ok(runner.invoke(app, ["pretrain", "--config", str(d / "cfg.yaml")]))
    return d


def test_pretrain_logs_every_term_and_saves_the_encoder(pretrained):
    run = pretrained / "run"
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    for k in ("train_sd", "train_mim", "train_adv_g", "train_adv_d", "train_lambda", "train_organ", "train_organ_acc"):
        assert k in header, k
    ck = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert len(ck["arl_lambda_trace"]) == 2 and all(v > 0 for _, v in ck["arl_lambda_trace"])  # 8 images / 4
    sd = ck["state_dict"]
    assert int(sd["steps_done"]) == 2 == ck["global_step"] and any(k.startswith("teacher.encoder.") for k in sd)
    assert any(k.startswith("discriminator.") for k in sd) and len(ck["optimizer_states"]) == 2
    # the encoder loads into a segmentation model
    ok(runner.invoke(app, ["models"]))  # listing works with the new encoders
    from sonokit.models import create_model
    from sonokit.models.encoders import load_encoder_checkpoint

    m = create_model("upernet", encoder="avit_tiny_patch16", img_size=32, encoder_kwargs={"acdt_blocks": [10, 11]})
    load_encoder_checkpoint(m.encoder, run / "encoder.safetensors")
    enc_sd = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
    assert torch.equal(m.encoder.state_dict()["model.pos_embed"], enc_sd["model.pos_embed"])


def test_resume_restores_teacher_discriminator_and_lambda_trace(pretrained):
    run = pretrained / "run"
    before = load_checkpoint(run / "checkpoints" / "last.ckpt")
    ok(runner.invoke(app, ["pretrain", "--resume", "--out", str(run), "--epochs", "2"]))
    after = load_checkpoint(run / "checkpoints" / "last.ckpt")
    trace = after["arl_lambda_trace"]
    assert trace[:2] == before["arl_lambda_trace"] and [s for s, _ in trace] == [0, 1, 2, 3]
    assert int(after["state_dict"]["steps_done"]) == 4
    t0 = before["state_dict"]["teacher.encoder.model.pos_embed"]
    t1 = after["state_dict"]["teacher.encoder.model.pos_embed"]
    s1 = after["state_dict"]["encoder.model.pos_embed"]
    assert not torch.equal(t0, t1) and not torch.equal(t1, s1)  # the EMA teacher moved, and lags the student


def test_pretrain_streams_shards_and_refuses_a_method_that_cannot(pretrained):
    d = pretrained
    r = runner.invoke(app, ["data", "shard", f"ph={d / 'ph'}", "--out", str(d / "shards"), "--shard-size", "3"])
    assert r.exit_code == 0, r.output
    cfg = yaml.safe_load((d / "cfg.yaml").read_text())
    cfg["data"]["root"], cfg["out_dir"] = str(d / "shards"), str(d / "stream")
    (d / "stream.yaml").write_text(yaml.safe_dump(cfg))
    ok(runner.invoke(app, ["pretrain", "--config", str(d / "stream.yaml")]))
    assert (d / "stream" / "encoder.safetensors").exists()
    assert load_checkpoint(d / "stream" / "checkpoints" / "last.ckpt")["state_dict"]["steps_done"] == 2  # 8 / 4
    r = runner.invoke(app, ["pretrain", "--config", str(d / "stream.yaml"), "--out", str(d / "pirl"),
                            "--set", "method={name: pirl, grid: 4}", "--set", "encoder={name: resnet10t}"])
    assert r.exit_code != 0 and "cannot stream" in str(r.exception)


def test_pretrain_with_lightning_ddp_on_two_cpu_processes_sees_every_sample_once(pretrained, monkeypatch):
    """`sonokit pretrain` with trainer.devices=2 (Lightning DDP, gloo, forked processes) streaming shards: each
    rank trains on its half, and over both ranks every sample is read exactly once per epoch."""
    import os

    from sonokit.data.shard_stream import ShardDataset

    d = pretrained
    if not (d / "shards" / "shards.json").exists():
        ok(runner.invoke(app, ["data", "shard", f"ph={d / 'ph'}", "--out", str(d / "shards"), "--shard-size", "3"]))
    seen = d / "seen"
    seen.mkdir(exist_ok=True)
    iterate = ShardDataset.__iter__

    def spy(self):  # inherited by the forked ranks and their loader workers: one file per process
        for s in iterate(self):
            with open(seen / f"{os.getpid()}.txt", "a") as f:
                f.write(f"{self.epoch} {s['key']}\n")
            yield s

    monkeypatch.setattr(ShardDataset, "__iter__", spy)
    cfg = yaml.safe_load((d / "cfg.yaml").read_text())
    cfg["data"].update(root=str(d / "shards"), batch_size=2, num_workers=1)
    cfg["out_dir"] = str(d / "ddp")
    cfg["trainer"].update(accelerator="cpu", devices=2, strategy="ddp_fork")
    (d / "ddp.yaml").write_text(yaml.safe_dump(cfg))
    ok(runner.invoke(app, ["pretrain", "--config", str(d / "ddp.yaml")]))
    lines = [ln.split() for f in seen.glob("*.txt") for ln in f.read_text().splitlines()]
    keys = sorted(k for e, k in lines if e == "0")
    assert keys == [f"ph__phantom_{i:04d}" for i in range(8)]  # 8 samples, each once over the two ranks
    assert len(list(seen.glob("*.txt"))) == 2  # read by two processes (one loader worker per rank)
    assert load_checkpoint(d / "ddp" / "checkpoints" / "last.ckpt")["state_dict"]["steps_done"] == 2  # 4 per rank / 2
    assert (d / "ddp" / "encoder.safetensors").exists()
