"""SF-RecSAM end to end on the generic pipeline: the two-stage preset trained through ``sonokit.fit`` (tiny SAM,
64 px, a synthetic folder dataset), then evaluate -> segment -> report -> export through the CLI."""
from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import sonokit
from sonokit.cli import app
from sonokit.serialization import load_checkpoint

from ..conftest import REPO, ok
from ..reports.fake_runs import tiny_split_overrides

runner = CliRunner()
PRESET = REPO / "configs" / "sfrecsam_busi_cpu.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The CPU preset, shrunk: vit_tiny at 64 px, 1 epoch per stage, T = 2 MC passes in stage 2."""
    d = tmp_path_factory.mktemp("sfrecsam")
    data = tiny_split_overrides(d)
    cfg = sonokit.load_config(PRESET, [*data, "optim.epochs=1", "corrector:model.mc_samples=2", "trainer.progress=none",
                                       f"out_dir={d / 'run'}"])
    assert cfg.model["sam_variant"] == "vit_tiny" and [s.name for s in cfg.stages] == ["base", "corrector"]
    return sonokit.fit(cfg, log=None), d


def _state(path) -> dict:
    return load_checkpoint(path)["state_dict"]


def _fresh(run) -> torch.nn.Module:
    """The model a stage starts from before any weight is loaded: built as the run builds it, after its seed."""
    import lightning as L

    from sonokit.models import create_model

    hp = load_checkpoint(run / "checkpoints" / "last.ckpt")["hyper_parameters"]
    L.seed_everything(0, verbose=False)  # the run's seed; nothing draws before the model is built
    return create_model(hp["model"], **hp["model_kwargs"])


def test_stage_one_trains_adapters_fusion_and_decoder_with_sam_encoder_frozen(trained):
    run, _ = trained
    base = run / "base"
    sd = _state(base / "checkpoints" / "last.ckpt")
    fresh = {f"model.{k}": v for k, v in _fresh(base).state_dict().items()}
    frozen = [k for k in fresh if k.startswith("model.image_encoder.") and "adapter" not in k and "fusion" not in k]
    assert frozen and all(torch.equal(sd[k], fresh[k]) for k in frozen)  # SAM's encoder: not one weight moved
    for part in ("adapter", "fusion", "model.mask_decoder."):
        assert any(not torch.equal(sd[k], fresh[k]) for k in fresh if part in k), part
    assert all(torch.equal(sd[k], fresh[k]) for k in fresh if k.startswith("model.corrector."))  # not trained yet
    info = json.loads((base / "run.json").read_text())
    assert info["status"] == "finished" and 0 < info["parameters"]["trainable"] < info["parameters"]["total"]
    assert json.loads((base / "run.json").read_text())["parameters"]["trainable"] > 10 * json.loads(
        (run / "corrector" / "run.json").read_text())["parameters"]["trainable"]


def test_stage_two_starts_from_stage_one_and_trains_only_the_corrector(trained):
    run, _ = trained
    base = _state(run / "base" / "checkpoints" / "best.ckpt")
    second = _state(run / "corrector" / "checkpoints" / "last.ckpt")
    assert base.keys() == second.keys()
    rest = [k for k in base if not k.startswith("model.corrector.")]
    assert rest and all(torch.equal(second[k], base[k]) for k in rest)  # loaded from stage 1, then frozen
    corr = [k for k in base if k.startswith("model.corrector.")]
    assert corr and all(not torch.equal(second[k], base[k]) for k in corr if k.endswith("weight"))
    n_corrector = sum(v.numel() for k, v in second.items() if k.startswith("model.corrector."))
    assert json.loads((run / "corrector" / "run.json").read_text())["parameters"]["trainable"] == n_corrector
    import yaml

    cfg2 = yaml.safe_load((run / "corrector" / "config.yaml").read_text())
    assert cfg2["init"]["checkpoint"].endswith("base/checkpoints/best.ckpt")
    assert cfg2["model"]["mc_samples"] == 2 and cfg2["model"]["gt_box_prob"] == 0.0
    assert [t["name"] for t in cfg2["loss"]] == ["sam_correction", "sam_uncertainty_bce"]
    cfg1 = yaml.safe_load((run / "base" / "config.yaml").read_text())
    assert cfg1["model"]["mc_samples"] == 0 and [t["name"] for t in cfg1["loss"]] == ["sam_dice_bce"]


def test_evaluate_segment_report_export(trained, tmp_path):
    run, d = trained
    ck = run / "corrector" / "checkpoints" / "best.ckpt"
    ok(runner.invoke(app, ["evaluate", "--checkpoint", str(ck), "--save-uncertainty"]))
    ev = json.loads((run / "corrector" / "eval" / "test.json").read_text())
    assert ev["n"] == 2 and all((run / "corrector" / "eval" / f"test_{m}").is_dir() for m in ("uncertainty", "fp", "fn"))
    out = ok(runner.invoke(app, ["segment", str(d / "ds" / "images" / "case_7.png"), "--checkpoint", str(ck),
                                 "--out", str(tmp_path / "seg"), "--save-uncertainty"]))
    assert "case_7_uncertainty.png" in out
    assert all((tmp_path / "seg" / f"case_7_{m}.png").exists() for m in ("mask", "uncertainty", "fp", "fn"))
    ok(runner.invoke(app, ["report", str(run)]))
    from sonokit.reports.html import find_runs

    assert (run / "config.yaml").exists() and find_runs(run) == [run / "base", run / "corrector"]  # stages only
    html = (run / "report.html").read_text()
    assert "Uncertainty: " in html and "FP map (red)" in html and "u wrong" in html
    ok(runner.invoke(app, ["export", "--checkpoint", str(ck), "--out", str(tmp_path / "m.safetensors")]))
    from sonokit.export import load_safetensors_model
    from sonokit.inference import Segmenter

    model, meta = load_safetensors_model(tmp_path / "m.safetensors")
    assert meta["sonokit_model"] == "sfrecsam" and "sam_checkpoint" not in json.loads(meta["model_kwargs"])
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        a, b = model(x), Segmenter.from_checkpoint(ck).model(x)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k]) for k in a)
    pytest.importorskip("onnx", reason="ONNX export is the optional extra sonokit[onnx]")
    r = runner.invoke(app, ["export", "--checkpoint", str(ck), "--out", str(tmp_path / "m.onnx")])
    assert r.exit_code == 0, r.output
    assert "corrector (stochastic passes) is NOT exported" in r.output and "largest" in r.output
