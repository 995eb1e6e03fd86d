"""`sonokit experiment ssl-grid` on a tiny phantom: pretrain variants x fractions, in-domain + OOD, resumable."""
import json

import pytest
import yaml
from typer.testing import CliRunner

from sonokit.cli import app
from sonokit.config import load_config
from sonokit.errors import ConfigError
from sonokit.experiments import SSLGrid, SSLGridConfig

from ..conftest import make_phantom, ok

runner = CliRunner()


@pytest.fixture(scope="module")
def grid_setup(tmp_path_factory):
    d = make_phantom(tmp_path_factory.mktemp("grid"))
    (d / "ft.yaml").write_text(yaml.safe_dump({
        "data": {"root": str(d / "ph"), "split": str(d / "split.json"), "image_size": 48, "batch_size": 8},
        "model": {"name": "resunet_resnet10t", "decoder_channels": [16, 16, 16, 8, 8]}}))
    (d / "pre.yaml").write_text(yaml.safe_dump({
        "data": {"root": str(d / "ph"), "split": str(d / "split.json"), "image_size": 48, "batch_size": 8},
        "method": {"num_negatives": 8}, "optim": {"epochs": 1}}))
    (d / "grid.yaml").write_text(yaml.safe_dump({
        "name": "tiny", "out_dir": str(d / "out"), "seeds": [0], "fractions": [0.5, 1.0], "epochs": [1, 1],
        "val_every": [1, 1], "finetune": str(d / "ft.yaml"), "pretrain": str(d / "pre.yaml"),
        "variants": [{"name": "supervised"}, {"name": "pirl_jigsaw", "method": "pirl", "pretext": "jigsaw"},
                     {"name": "pirl_freq", "method": "pirl", "pretext": "freq"},
                     {"name": "rcl_perceptual", "method": "rcl+perceptual", "pretext": "best"}],
        "ood": [{"name": "phantom", "simulate_n": 4, "simulate_size": 48, "simulate_seed": 9}]}))
    return d


def test_ssl_grid_end_to_end_and_resume(grid_setup):
    d = grid_setup
    ok(runner.invoke(app, ["experiment", "ssl-grid", "--config", str(d / "grid.yaml")]))
    out = d / "out"
    res = json.loads((out / "results.json").read_text())
    rows = res["rows"]
    assert {r["variant"] for r in rows} == {"supervised", "pirl_jigsaw", "pirl_freq", "rcl_perceptual"}
    assert {r["split"] for r in rows} == {"test", "ood_phantom"}
    assert len(rows) == 4 * 2 * 2 * 5  # variants x fractions x eval sets x metrics (one seed)
    assert res["pretext_choices"]["rcl_perceptual"] in ("jigsaw", "freq")  # chosen on val among PIRL views
    for v in ("pirl_jigsaw", "pirl_freq", "rcl_perceptual"):  # pretrained once, loaded by every fine-tune
        enc = out / "pretrain" / v / "encoder.safetensors"
        assert enc.exists()
        cfg = yaml.safe_load((out / "finetune" / v / "frac0.5_seed0" / "config.yaml").read_text())
        assert cfg["model"]["encoder_checkpoint"] == str(enc)
    sup = yaml.safe_load((out / "finetune" / "supervised" / "frac1_seed0" / "config.yaml").read_text())
    assert sup["model"].get("encoder_checkpoint") is None
    md = (out / "results.md").read_text()
    assert "Dice gain vs supervised" in md and "pts" in md and "ood_phantom" in md
    assert "SSL grid" in (out / "report.html").read_text()
    # rerunning resumes: nothing is trained again, the same rows come back
    stamp = (out / "finetune" / "supervised" / "frac1_seed0" / "checkpoints" / "best.ckpt").stat().st_mtime
    ok(runner.invoke(app, ["experiment", "ssl-grid", "--config", str(d / "grid.yaml")]))
    assert (out / "finetune" / "supervised" / "frac1_seed0" / "checkpoints" / "best.ckpt").stat().st_mtime == stamp
    assert json.loads((out / "results.json").read_text())["rows"] == rows
    from safetensors import safe_open

    with safe_open(str(out / "pretrain" / "rcl_perceptual" / "encoder.safetensors"), framework="pt") as fh:
        assert json.loads((out / "results.json").read_text())["pretext_choices"]["rcl_perceptual"] == fh.metadata()["pretext"]
    # collecting only (no training) gives the same rows; a missing run is left out, not trained
    import shutil

    shutil.rmtree(out / "finetune" / "pirl_freq" / "frac1_seed0")
    grid = SSLGrid(load_config(d / "grid.yaml", cls=SSLGridConfig))
    got = grid.run(train=False)
    assert not (out / "finetune" / "pirl_freq" / "frac1_seed0").exists()
    assert got == [r for r in rows if not (r["variant"] == "pirl_freq" and r["fraction"] == 1.0)]


@pytest.mark.parametrize("override, match", [
    ("epochs=[1]", "equal lengths"),
    ("variants=[{name: pirl_jigsaw, method: pirl, pretext: jigsaw}]", "one named 'supervised'"),
    ("variants=[{name: supervised}, {name: x, method: pirl, pretext: rotate}]", "unknown pretext"),
    ("variants=[{name: supervised}, {name: x, method: simclr}]", "unknown SSL method"),
])
def test_ssl_grid_bad_config(grid_setup, override, match):
    cfg = load_config(grid_setup / "grid.yaml", [override], cls=SSLGridConfig)
    with pytest.raises(ConfigError, match=match):
        SSLGrid(cfg)


@pytest.mark.parametrize("override", ["pretrain_set=[data.split=null]", "pretrain_set=[data.split=other.json]"])
def test_ssl_grid_refuses_pretraining_on_the_fine_tune_test_images(grid_setup, override):
    cfg = load_config(grid_setup / "grid.yaml", [override], cls=SSLGridConfig)
    with pytest.raises(ConfigError, match="pretraining would see the images the grid tests on"):
        SSLGrid(cfg)
