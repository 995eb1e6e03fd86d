"""SF-RecSAM with an A-ViT image encoder end to end: the preset (shrunk) trained through ``sonokit.fit`` from a
sonokit-pretrained A-ViT file, then evaluated with the organ given, segmented and exported through the CLI."""
from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import sonokit
from sonokit.cli import app
from sonokit.models import create_encoder
from sonokit.runs.pretrain import save_encoder
from sonokit.serialization import load_checkpoint

from ..conftest import REPO, ok
from ..reports.fake_runs import tiny_split_overrides

runner = CliRunner()
PRESET = REPO / "configs" / "sfrecsam_avit_busi_cpu.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("sfrecsam_avit")
    data = tiny_split_overrides(d)
    torch.manual_seed(3)
    enc = create_encoder("avit_tiny_patch16", img_size=64, acdt_blocks="last_half")
    path = save_encoder(enc, d / "encoder.safetensors", {"encoder": "avit_tiny_patch16"})
    cfg = sonokit.load_config(PRESET, [*data, f"model.encoder_init={path}", "optim.epochs=1",
                                       "corrector:model.mc_samples=2", "trainer.progress=none",
                                       f"out_dir={d / 'run'}"])
    assert cfg.model["image_encoder"] == "avit_tiny_patch16"
    return sonokit.fit(cfg, log=None), d, enc


def test_the_pretrained_avit_is_where_training_starts_and_it_trains(trained):
    run, _, enc = trained
    hp = load_checkpoint(run / "base" / "checkpoints" / "last.ckpt")["hyper_parameters"]
    kw = hp["model_kwargs"]
    assert kw["image_encoder_kwargs"] == {"acdt_blocks": "last_half", "n_organs": 16}  # from data.organs
    sd = load_checkpoint(run / "base" / "checkpoints" / "last.ckpt")["state_dict"]
    start = {f"model.image_encoder.encoder.{k}": v for k, v in enc.state_dict().items()}
    moved = [k for k, v in start.items() if v.is_floating_point() and not torch.equal(sd[k], v)]
    assert moved and len(moved) > len(start) // 2  # stage 1 fine-tunes the A-ViT (no adapters wrap it)
    assert json.loads((run / "corrector" / "run.json").read_text())["status"] == "finished"


def test_evaluate_with_the_organ_segment_and_export(trained, tmp_path):
    run, d, _ = trained
    ck = run / "corrector" / "checkpoints" / "best.ckpt"
    ok(runner.invoke(app, ["evaluate", "--checkpoint", str(ck), "--organ", "breast", "--name", "breast"]))
    assert json.loads((run / "corrector" / "eval" / "breast.json").read_text())["n"] == 2
    r = runner.invoke(app, ["evaluate", "--checkpoint", str(ck), "--organ", "kidneyy"])
    assert r.exit_code != 0 and "known organs: breast, thyroid" in str(r.exception) + r.output
    ok(runner.invoke(app, ["segment", str(d / "ds" / "images" / "case_7.png"), "--checkpoint", str(ck),
                           "--out", str(tmp_path / "seg"), "--save-uncertainty"]))
    assert all((tmp_path / "seg" / f"case_7_{m}.png").exists() for m in ("mask", "uncertainty"))
    # the default backend (auto) runs torch: the ONNX graph holds no corrector, so it would give other masks
    ok(runner.invoke(app, ["segment", str(d / "ds" / "images" / "case_7.png"), "--checkpoint", str(ck),
                           "--out", str(tmp_path / "auto")]))
    assert (tmp_path / "auto" / "case_7_mask.png").exists() and not ck.with_name("best.ckpt.onnx").exists()
    r = runner.invoke(app, ["segment", str(d / "ds" / "images" / "case_7.png"), "--checkpoint", str(ck),
                            "--out", str(tmp_path / "onnx"), "--backend", "onnx"])
    assert r.exit_code != 0 and "--backend onnx cannot serve this model: ONNX holds SF-RecSAM's base network" in str(
        r.exception) and "use --backend torch" in str(r.exception)
    ok(runner.invoke(app, ["export", "--checkpoint", str(ck), "--out", str(tmp_path / "m.safetensors")]))
    from sonokit.export import load_safetensors_model
    from sonokit.inference import Segmenter

    model, meta = load_safetensors_model(tmp_path / "m.safetensors")
    assert "encoder_init" not in json.loads(meta["model_kwargs"])  # init-only: a rebuilt model does not read it
    x, organ = torch.rand(2, 1, 64, 64), torch.tensor([1, 1])
    with torch.no_grad():
        a, b = model(x, organ=organ), Segmenter.from_checkpoint(ck).model(x, organ=organ)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k]) for k in a)
