"""Classification end to end (train -> evaluate -> predict -> report) and a two-stage run from one config."""
import json

import pytest
import yaml
from typer.testing import CliRunner

import sonokit
from sonokit.cli import app
from sonokit.serialization import load_checkpoint

from ..conftest import make_phantom, ok

runner = CliRunner()
TINY = ["--set", "model.encoder=resnet10t", "--set", "data.image_size=48", "--set", "data.batch_size=8",
        "--set", "trainer.progress=none", "--set", "optim.epochs=2"]


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(tmp_path_factory.mktemp("cls"))


@pytest.fixture(scope="module")
def classified(phantom):
    run = phantom / "cls"
    ok(runner.invoke(app, ["train", "classify", "--out", str(run), "--set", f"data.root={phantom / 'ph'}",
                           "--set", f"data.split={phantom / 'split.json'}", *TINY]))
    return run


def test_classify_train_evaluate_predict_report(classified, phantom):
    data = json.loads((classified / "data.json").read_text())
    assert data["classes"] == ["hyperechoic", "hypoechoic"] and sum(data["train_class_counts"]) == data["train"]
    out = ok(runner.invoke(app, ["evaluate", "--checkpoint", str(classified / "checkpoints" / "best.ckpt")]))
    assert "balanced_accuracy" in out and "confusion" in out
    ev = json.loads((classified / "eval" / "test.json").read_text())
    n_test = len(json.loads((phantom / "split.json").read_text())["test"])
    assert ev["task"] == "classify" and ev["n"] == n_test
    assert sum(map(sum, ev["confusion"])) == n_test and set(ev["recall"]) == set(data["classes"])
    probs = sonokit.predict(classified / "checkpoints" / "best.ckpt", [phantom / "ph" / "images" / "phantom_0000.png"])
    assert probs[0].shape == (2,) and abs(float(probs[0].sum()) - 1) < 1e-5
    ok(runner.invoke(app, ["report", str(classified)]))
    html = (classified / "report.html").read_text()
    assert "confusion" in html.lower()


def test_linear_probe_freezes_the_encoder_and_its_statistics(phantom):
    run = phantom / "probe"
    ok(runner.invoke(app, ["train", "classify", "--out", str(run), "--set", f"data.root={phantom / 'ph'}",
                           "--set", f"data.split={phantom / 'split.json'}", "--set", "linear_probe=true", *TINY]))
    counts = json.loads((run / "run.json").read_text())["parameters"]
    assert counts["trainable"] == 2 * 512 + 2  # the linear head of a ResNet10t (512 features, 2 classes)
    run_cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert "probe_norm" not in run_cfg["model"]  # the run supplies it; the config stays as written
    import lightning as L

    from sonokit.models import create_model

    L.seed_everything(0, verbose=False)  # the run's seed, and nothing draws before the model is built
    fresh = create_model("classifier", encoder="resnet10t", num_classes=2, img_size=48)
    sd = load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    for k, v in fresh.encoder.state_dict().items():  # weights AND BatchNorm running statistics unchanged
        assert (sd[f"model.encoder.{k}"].float() - v.float()).abs().max() == 0, k
    # a linear probe standardises the pooled features (BatchNorm without affine, as MAE), and its statistics train
    assert sd["model.head_norm.running_var"].shape == (512,) and sd["model.head_norm.num_batches_tracked"] > 0


def test_two_stages_from_one_config(phantom, tmp_path):
    cfg = tmp_path / "two.yaml"
    cfg.write_text(yaml.safe_dump({
        "task": "segment", "name": "two", "out_dir": str(tmp_path / "two"),
        "data": {"root": str(phantom / "ph"), "split": str(phantom / "split.json"), "image_size": 48, "batch_size": 8},
        "model": {"name": "resunet_resnet10t", "decoder_channels": [8, 8, 8, 8, 8]},
        "trainer": {"progress": "none"}, "optim": {"epochs": 1},
        "stages": [{"name": "base"},
                   {"name": "decoder", "set": {"optim.freeze": ["encoder.*"], "optim.epochs": 1, "optim.lr": 1e-4}}]}))
    ok(runner.invoke(app, ["train", "segment", "--config", str(cfg)]))
    base = load_checkpoint(tmp_path / "two" / "base" / "checkpoints" / "best.ckpt")["state_dict"]
    second = tmp_path / "two" / "decoder"
    sd = load_checkpoint(second / "checkpoints" / "last.ckpt")["state_dict"]
    enc = [k for k in base if k.startswith("model.encoder.") and "num_batches" not in k]
    assert enc and all((sd[k].float() - base[k].float()).abs().max() == 0 for k in enc)  # loaded, then frozen
    assert any((sd[k].float() - base[k].float()).abs().max() > 0 for k in base if k.startswith("model.decoder."))
    stage2 = yaml.safe_load((second / "config.yaml").read_text())
    assert stage2["init"]["checkpoint"].endswith("base/checkpoints/best.ckpt") and stage2["optim"]["freeze"] == ["encoder.*"]
    assert json.loads((second / "run.json").read_text())["parameters"]["trainable"] < \
        json.loads((tmp_path / "two" / "base" / "run.json").read_text())["parameters"]["trainable"]
    # rerunning the command skips the finished stages
    started = json.loads((second / "run.json").read_text())["started"]
    ok(runner.invoke(app, ["train", "segment", "--config", str(cfg), "--resume"]))
    assert json.loads((second / "run.json").read_text())["started"] == started
    # a run that stopped before its second stage resumes from the folder alone (its root config.yaml)
    import shutil

    root = yaml.safe_load((tmp_path / "two" / "config.yaml").read_text())
    assert [s["name"] for s in root["stages"]] == ["base", "decoder"]
    shutil.rmtree(second)
    base_started = json.loads((tmp_path / "two" / "base" / "run.json").read_text())["started"]
    ok(runner.invoke(app, ["train", "segment", "--resume", "--out", str(tmp_path / "two")]))
    assert (second / "checkpoints" / "best.ckpt").exists()
    assert json.loads((tmp_path / "two" / "base" / "run.json").read_text())["started"] == base_started
    # without --resume, a folder whose stages trained is refused before anything is written
    r = runner.invoke(app, ["train", "segment", "--config", str(cfg)])
    assert r.exit_code != 0 and "already holds stage 'base'" in str(r.exception) and "--resume" in str(r.exception)
