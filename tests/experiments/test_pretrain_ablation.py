"""`sonokit experiment avit-ablation` on a tiny phantom: rows pretrained once, downstream tasks per seed, the
organ check, resuming, and the config checks."""
import json

import pytest
import yaml
from typer.testing import CliRunner

from sonokit.cli import app
from sonokit.config import load_config
from sonokit.errors import ConfigError
from sonokit.experiments import PretrainAblation, PretrainAblationConfig

from ..conftest import REPO, make_phantom, ok

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = make_phantom(tmp_path_factory.mktemp("pabl"), n=16, size=48)
    data = {"root": str(d / "ph"), "split": str(d / "split.json"), "image_size": 32, "batch_size": 4}
    (d / "pre.yaml").write_text(yaml.safe_dump({
        "task": "pretrain", "data": data, "encoder": {"name": "avit_tiny_patch16", "acdt_blocks": [11]},
        "method": {"name": "arl", "out_dim": 32, "hidden_dim": 16, "bottleneck_dim": 8, "n_local": 1,
                   "local_size": 16, "adv_patches": 8}, "optim": {"epochs": 1}}))
    (d / "cls.yaml").write_text(yaml.safe_dump({
        "task": "classify", "data": data, "model": {"name": "classifier", "encoder": "resnet10t"},
        "optim": {"epochs": 1}}))
    (d / "abl.yaml").write_text(yaml.safe_dump({
        "name": "tiny", "out_dir": str(d / "out"), "pretrain": str(d / "pre.yaml"), "seeds": [0],
        "organs": ["dataset", "predicted", "heart"],
        "rows": [{"name": "scratch ViT", "pretrain": False, "set": ["encoder.acdt_blocks=none"]},
                 {"name": "full", "set": []}],
        "downstream": [{"name": "probe", "config": str(d / "cls.yaml"), "set": ["linear_probe=true"]},
                       {"name": "probe, full only", "config": str(d / "cls.yaml"), "set": ["linear_probe=true"],
                        "rows": ["full"]}]}))
    return d


def test_rows_pretrain_once_and_downstream_is_scored_with_each_organ(setup):
    d = setup
    ok(runner.invoke(app, ["experiment", "avit-ablation", "--config", str(d / "abl.yaml")]))
    out = d / "out"
    assert (out / "pretrain" / "full" / "encoder.safetensors").exists()
    assert not (out / "pretrain" / "scratch_ViT").exists()  # no pretraining for that row
    run = out / "downstream" / "full" / "probe" / "seed0"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"]["encoder"] == "avit_tiny_patch16" and cfg["model"]["encoder_kwargs"] == {"acdt_blocks": [11]}
    assert cfg["model"]["encoder_checkpoint"].endswith("pretrain/full/encoder.safetensors") and cfg["linear_probe"]
    res = json.loads((out / "results.json").read_text())["rows"]
    modes = {(r["row"], r["organ"]) for r in res}
    # the scratch row is a plain ViT: the organ does not matter, so it is scored once
    assert modes == {("scratch ViT", "dataset"), ("full", "dataset"), ("full", "predicted"), ("full", "heart")}
    assert {r["metric"] for r in res} == {"accuracy", "balanced_accuracy", "auroc"}
    assert {r["row"] for r in res if r["task"] == "probe, full only"} == {"full"}  # a task limited to rows
    assert not (out / "downstream" / "scratch_ViT" / "probe_full_only").exists()
    assert json.loads((run / "eval" / "test_organ_heart.json").read_text())["organ"] == "heart"
    assert json.loads((run / "eval" / "test.json").read_text())["organ"] == "phantom"
    md = (out / "results.md").read_text()
    assert "| full | probe | heart | accuracy |" in md
    # rerun: nothing trains again
    stamp = (run / "checkpoints" / "best.ckpt").stat().st_mtime_ns
    ok(runner.invoke(app, ["experiment", "avit-ablation", "--config", str(d / "abl.yaml")]))
    assert (run / "checkpoints" / "best.ckpt").stat().st_mtime_ns == stamp


def test_config_checks(setup):
    d = setup
    base = yaml.safe_load((d / "abl.yaml").read_text())
    base["downstream"] = base["downstream"][:1]  # (the second names row 'full', which some cases remove)
    for change, match in [({"rows": [{"name": "a", "set": ["method.mask_ratio=2"]}]}, "row 'a'.*mask_ratio"),
                          ({"rows": [{"name": "a"}, {"name": "a"}]}, "unique names"),
                          ({"organs": ["heart"]}, "must include 'dataset'"),
                          ({"downstream": [{"name": "x", "config": str(d / "cls.yaml"), "rows": ["nope"]}]},
                           r"downstream 'x': rows \['nope'\] are not rows"),
                          ({"downstream": [{"name": "x", "config": str(d / "pre.yaml")}]}, "a 'pretrain' config")]:
        (d / "bad.yaml").write_text(yaml.safe_dump({**base, **change}))
        with pytest.raises(ConfigError, match=match):
            PretrainAblation(load_config(d / "bad.yaml", cls=PretrainAblationConfig))


def test_the_avit_preset_lists_the_papers_rows(monkeypatch):
    monkeypatch.chdir(REPO)
    cfg = load_config(REPO / "configs" / "avit_ablation_cpu.yaml", cls=PretrainAblationConfig)
    assert [r.name for r in cfg.rows] == ["ViT from scratch", "MIM", "+ ACDT", "+ adversarial",
                                          "+ self-distillation (full)", "full, λ fixed"]
    abl = PretrainAblation(cfg, log=lambda s: None)  # every row and task resolves
    pre = [abl.pretrain_config(r) for r in cfg.rows]
    assert [p.encoder.get("acdt_blocks") for p in pre] == ["none", "none", "last_half", "last_half", "last_half",
                                                         "last_half"]
    assert [(p.method.get("adversarial", True), p.method.get("distill", True)) for p in pre[1:]] == [
        (False, False), (False, False), (True, False), (True, True), (True, True)]


def test_rows_split_between_processes_share_one_results_table(setup, tmp_path):
    d, out = setup, tmp_path / "split"
    args = ["experiment", "avit-ablation", "--config", str(d / "abl.yaml"), "--out", str(out)]
    ok(runner.invoke(app, [*args, "--row", "full", "--task", "probe"]))
    assert not (out / "downstream" / "full" / "probe_full_only").exists()  # --task: that task only
    ok(runner.invoke(app, [*args, "--row", "full"]))
    assert not (out / "downstream" / "scratch_ViT").exists()
    assert {r["row"] for r in json.loads((out / "results.json").read_text())["rows"]} == {"full"}
    ok(runner.invoke(app, [*args, "--row", "scratch ViT"]))  # the other "process": its write holds both rows
    assert {r["row"] for r in json.loads((out / "results.json").read_text())["rows"]} == {"full", "scratch ViT"}
    tasks = {r["task"] for r in json.loads((out / "results.json").read_text())["rows"]}
    assert tasks == {"probe", "probe, full only"}
    r = runner.invoke(app, [*args, "--task", "nope"])
    assert isinstance(r.exception, ConfigError) and "unknown downstream tasks ['nope']" in str(r.exception)
    r = runner.invoke(app, [*args, "--row", "nope"])
    assert isinstance(r.exception, ConfigError) and "unknown rows ['nope']" in str(r.exception) \
        and "scratch ViT" in str(r.exception)
