"""`sonokit experiment ablation` on a tiny phantom: rows x seeds trained, resumed, tabled; stage rules; the paired
bootstrap on hand-made examples."""
import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from sonokit.cli import app
from sonokit.config import load_config
from sonokit.errors import ConfigError
from sonokit.evaluation.paired import format_paired, mean_per_image, paired_bootstrap, per_image
from sonokit.experiments import Ablation, AblationConfig, parse_ood

from ..conftest import REPO, make_phantom, ok

runner = CliRunner()
UNET = {"name": "resunet_resnet10t", "decoder_channels": [16, 16, 16, 8, 8]}
SAM = {"name": "sfrecsam", "sam_variant": "vit_tiny", "mc_samples": 0, "dropout": 0.2}
SAM_STAGES = [
    {"name": "base", "set": {"optim.freeze": ["image_encoder.*", "prompt_encoder.*"],
                             "optim.unfreeze": ["*adapter*", "*fusion*"]}},
    {"name": "corrector", "set": {"model.mc_samples": 2, "optim.freeze": ["image_encoder.*", "prompt_encoder.*",
                                                                          "mask_decoder.*"],
                                  "optim.unfreeze": ["corrector.*"],
                                  "loss": [{"name": "sam_dice_bce"}, {"name": "sam_correction"}]}}]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = make_phantom(tmp_path_factory.mktemp("abl"))
    data = {"root": str(d / "ph"), "split": str(d / "split.json"), "image_size": 48, "batch_size": 8}
    (d / "unet.yaml").write_text(yaml.safe_dump({"task": "segment", "data": data, "model": UNET,
                                                 "optim": {"epochs": 1}}))
    (d / "sam.yaml").write_text(yaml.safe_dump({
        "task": "segment", "data": {**data, "image_size": 64}, "model": SAM, "loss": [{"name": "sam_dice_bce"}],
        "optim": {"epochs": 1}, "stages": SAM_STAGES}))
    (d / "abl.yaml").write_text(yaml.safe_dump({
        "name": "tiny", "out_dir": str(d / "out"), "base": str(d / "unet.yaml"), "seeds": [0, 1],
        "rows": [{"name": "wide decoder"}, {"name": "narrow decoder", "set": ["model.decoder_channels=[8, 8, 8, 8, 8]"]}],
        "bootstrap": 500}))
    ok(runner.invoke(app, ["simulate", "phantom", "--out", str(d / "ood"), "--n", "4", "--size", "48", "--seed", "7"]))
    return d


def test_ablation_trains_rows_x_seeds_tables_them_and_resumes(setup):
    d = setup
    ok(runner.invoke(app, ["experiment", "ablation", "--config", str(d / "abl.yaml"), "--ood", f"other={d / 'ood'}"]))
    out = d / "out"
    res = json.loads((out / "results.json").read_text())
    rows = res["rows"]
    assert {(r["row"], r["seed"]) for r in rows} == {(n, s) for n in ("wide decoder", "narrow decoder") for s in (0, 1)}
    assert {r["split"] for r in rows} == {"test", "ood_other"}
    assert {r["metric"] for r in rows} == {"dice", "iou", "precision", "recall", "hd95"}
    assert len(rows) == 2 * 2 * 2 * 5  # rows x seeds x eval sets x metrics
    narrow = yaml.safe_load((out / "runs" / "narrow_decoder" / "frac1_seed1" / "config.yaml").read_text())
    assert narrow["model"]["decoder_channels"] == [8] * 5 and narrow["seed"] == 1
    ev = json.loads((out / "runs" / "wide_decoder" / "frac1_seed0" / "eval" / "test.json").read_text())
    assert res["per_image_dice"]["wide decoder"]["test"]["1"]["0"] == {r["id"]: r["dice"] for r in ev["rows"]}
    md = (out / "results.md").read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert table[0] == ("| row | evaluated on | labels | Dice | IoU | precision | recall | HD95 (mm) | Dice vs first row "
                        "| seeds |")
    body = [ln.split(" | ")[0][2:] for ln in table[1:5]]
    assert body == ["wide decoder", "narrow decoder"] * 2
    assert all(c.count("±") == 5 and "(n = 1)" not in c for c in table[1:5])  # 2 seeds: mean ± std
    assert "narrow decoder − wide decoder" in md  # default comparison: the last row against the first
    comp = res["comparisons"][0]
    assert comp["a"] == "narrow decoder" and comp["seeds"] == [0, 1] and comp["n"] == len(ev["rows"])
    assert "Ablation" in (out / "report.html").read_text()
    # rerunning resumes: nothing is trained again, the same rows come back
    ckpt = out / "runs" / "narrow_decoder" / "frac1_seed1" / "checkpoints" / "best.ckpt"
    stamp = ckpt.stat().st_mtime_ns
    ok(runner.invoke(app, ["experiment", "ablation", "--config", str(d / "abl.yaml"), "--ood", f"other={d / 'ood'}"]))
    assert ckpt.stat().st_mtime_ns == stamp
    assert json.loads((out / "results.json").read_text())["rows"] == rows
    # one seed: "(n = 1)", never "± 0.000"
    one = Ablation(load_config(d / "abl.yaml", ["seeds=[0]"], cls=AblationConfig), log=lambda s: None)
    got = one.run(train=False)
    assert {r["seed"] for r in got} == {0}
    table = [ln for ln in (out / "results.md").read_text().splitlines() if ln.startswith(("| wide", "| narrow")) and "−" not in ln]
    assert len(table) == 2 and all(c.count("(n = 1)") == 5 and "±" not in c for c in table)


def test_row_overrides_and_stages(setup):
    from sonokit.experiments.ablation import AblationRow

    cfg = load_config(setup / "abl.yaml", [f"base={setup / 'sam.yaml'}", "seeds=[0]"], cls=AblationConfig)
    cfg.rows = [AblationRow("adapters", ["model.fusion=none", "model.corrector=none", "optim.unfreeze=['*adapter*']"],
                            stages=["base"]),
                AblationRow("fp", ["model.corrector=fp", "corrector:model.mc_samples=3"]),
                AblationRow("unet", base=str(setup / "unet.yaml"))]
    abl = Ablation(cfg, log=lambda s: None)
    a = abl.row_config(cfg.rows[0], seed=0, fraction=1.0)
    assert [s.name for s in a.stages] == ["base"] and a.stages[0].set["optim.unfreeze"] == ["*adapter*"]
    assert a.model["fusion"] == "none"
    fp = abl.row_config(cfg.rows[1], seed=2, fraction=0.5)
    assert [s.name for s in fp.stages] == ["base", "corrector"] and fp.model["corrector"] == "fp"
    assert fp.stages[1].set["model.mc_samples"] == 3 and fp.stages[0].set.get("model.mc_samples") is None
    assert fp.seed == 2 and fp.data.fraction == 0.5 and fp.out_dir.endswith("runs/fp/frac0.5_seed2")
    assert abl.row_config(cfg.rows[2], seed=0, fraction=1.0).model["name"] == "resunet_resnet10t"
    for rows, match in [
        ([AblationRow("x", stages=["nope"])], r"stages \['nope'\] are not stages"),
        ([AblationRow("x", ["nope:optim.lr=1"])], "row 'x': .*no stage 'nope'"),
        ([AblationRow("x", ["corrector:optim.lr=1"], stages=["base"])], "no stage 'corrector'"),
        ([AblationRow("x", ["model.fusoin=sf"])], "fusoin"),
        ([AblationRow("x"), AblationRow("x")], "unique names"),
        ([AblationRow("x", ["data.split=other.json"]), AblationRow("y")], "must be scored on the same test images"),
        ([AblationRow("x"), AblationRow("y", ["data.split=null"])], "no data.split"),
    ]:
        cfg.rows = rows
        with pytest.raises(ConfigError, match=match):
            Ablation(cfg, log=lambda s: None)
    with pytest.raises(ConfigError, match="out-of-distribution sets need unique names"):
        Ablation(load_config(setup / "abl.yaml", ["ood=[{name: a, root: x}, {name: a, root: y}]"], cls=AblationConfig))
    with pytest.raises(ConfigError, match=r"compare: each entry"):
        Ablation(load_config(setup / "abl.yaml", ["compare=[[wide decoder, nope]]"], cls=AblationConfig))


def test_sam_rows_with_their_stages_train_and_score(setup):
    from sonokit.experiments.ablation import AblationRow

    cfg = load_config(setup / "abl.yaml", [f"base={setup / 'sam.yaml'}", "seeds=[0]", f"out_dir={setup / 'sam_out'}"],
                      cls=AblationConfig)
    cfg.rows = [AblationRow("SAM + adapters", ["model.fusion=none", "model.corrector=none",
                                               "optim.unfreeze=['*adapter*']"], stages=["base"]),
                AblationRow("full (dual)")]
    rows = Ablation(cfg, log=lambda s: None).run()
    out = setup / "sam_out" / "runs"
    assert not (out / "SAM_adapters" / "frac1_seed0" / "corrector").exists()
    assert (out / "SAM_adapters" / "frac1_seed0" / "base" / "eval" / "test.json").exists()
    assert (out / "full_dual" / "frac1_seed0" / "corrector" / "eval" / "test.json").exists()
    assert {r["row"] for r in rows} == {"SAM + adapters", "full (dual)"}
    md = (setup / "sam_out" / "results.md").read_text()
    assert "full (dual) − SAM + adapters" in md and "(n = 1)" in md


def test_a_row_reuses_an_earlier_rows_stage(setup):
    """Two corrector variants on one trained base: the base folder is a link to the first row's, nothing is trained
    twice, the differing settings are recorded; a reuse of a later row, an unknown row or stage is an error."""
    from sonokit.experiments.ablation import AblationRow

    out = setup / "reuse_out"
    cfg = load_config(setup / "abl.yaml", [f"base={setup / 'sam.yaml'}", "seeds=[0]", f"out_dir={out}"],
                      cls=AblationConfig)
    cfg.rows = [AblationRow("base only", ["model.corrector=none"], stages=["base"]),
                AblationRow("fp", ["model.corrector=fp"], reuse={"base": "base only"}),
                AblationRow("dual", reuse={"base": "base only"})]
    logs: list[str] = []
    abl = Ablation(cfg, log=logs.append)
    abl.run()
    runs = out / "runs"
    base = runs / "base_only" / "frac1_seed0" / "base"
    stamp = (base / "checkpoints" / "best.ckpt").stat().st_mtime_ns
    for row in ("fp", "dual"):
        link = runs / row / "frac1_seed0" / "base"
        assert link.is_symlink() and link.resolve() == base.resolve()
        assert (runs / row / "frac1_seed0" / "corrector" / "eval" / "test.json").exists()
    assert (base / "checkpoints" / "best.ckpt").stat().st_mtime_ns == stamp  # the base trained once
    # the corrector started from the shared base's best model
    fp_cfg = yaml.safe_load((runs / "fp" / "frac1_seed0" / "corrector" / "config.yaml").read_text())
    assert fp_cfg["init"]["checkpoint"].endswith("fp/frac1_seed0/base/checkpoints/best.ckpt")
    res = json.loads((out / "results.json").read_text())
    assert res["runs"]["fp|1|0"]["reused_stages"] == {"base": {"row": "base only",
                                                               "differs": {"model.corrector": ["none", "fp"]}}}
    assert any("stage 'base' reused from 'base only'" in ln and "model.corrector: none -> fp" in ln for ln in logs)
    assert {r["row"] for r in res["rows"]} == {"base only", "fp", "dual"}
    for rows, match in [
        ([AblationRow("a", reuse={"base": "b"}), AblationRow("b")], "needs 'b' to be a row listed before it"),
        ([AblationRow("a"), AblationRow("b", reuse={"bse": "a"})], "row 'b' has no stage 'bse'"),
        ([AblationRow("a", stages=["corrector"]), AblationRow("b", reuse={"base": "a"})], "row 'a' has no stage 'base'"),
    ]:
        cfg.rows = rows
        with pytest.raises(ConfigError, match=match):
            Ablation(cfg, log=lambda s: None)
    # a reused stage that has not finished training is an error, not a silent retrain
    cfg.rows = [AblationRow("a", stages=["base"]), AblationRow("b", reuse={"base": "a"})]
    cfg.out_dir = str(setup / "reuse_unfinished")
    abl = Ablation(cfg, log=lambda s: None)
    with pytest.raises(ConfigError, match="has not finished training"):
        abl.link_reused(cfg.rows[1], 1.0, 0, abl.row_config(cfg.rows[1], seed=0, fraction=1.0))


def test_ood_argument_and_device():
    from sonokit.experiments.ablation import device_overrides

    assert parse_ood("busb=/data/b").name == "busb" and parse_ood("/data/my set").name == "my_set"
    assert device_overrides("cuda:1") == ["trainer.accelerator=gpu", "trainer.devices='1,'"]
    assert device_overrides(None) == [] and device_overrides("cpu") == ["trainer.accelerator=cpu"]
    with pytest.raises(ConfigError, match="device must be"):
        device_overrides("tpu")


def test_the_sfrecsam_preset_lists_the_papers_rows(monkeypatch):
    cfg = load_config(REPO / "configs" / "sfrecsam_ablation_busi_cpu.yaml", cls=AblationConfig)
    names = [r.name for r in cfg.rows]
    assert names == ["SAM + adapters", "+ spatial-frequency fusion", "+ FP corrector", "+ FN corrector",
                     "full (SF fusion + dual corrector)", "spatial-only fusion", "full, spatial-only fusion",
                     "Res-UNet (ResNet18), supervised"]
    assert cfg.seeds == [0, 1, 2]
    assert [r.reuse.get("base") for r in cfg.rows] == [None, None, *["+ spatial-frequency fusion"] * 3, None,
                                                       "spatial-only fusion", None]
    assert cfg.rows[-1].base == "configs/busi_resunet18_cpu.yaml"
    assert cfg.base == "configs/sfrecsam_busi_cpu.yaml"
    if not (REPO / cfg.base).exists():
        pytest.skip(f"{cfg.base} is not written yet")
    monkeypatch.chdir(REPO)
    abl = Ablation(cfg, log=lambda s: None)  # every row resolves against the base config and passes the checks
    models = [abl.row_config(r, seed=0, fraction=1.0).model for r in cfg.rows[:-1]]
    assert [(m.get("fusion"), m.get("corrector")) for m in models] == [
        ("none", "none"), ("sf", "none"), ("sf", "fp"), ("sf", "fn"), ("sf", "dual"), ("spatial", "none"),
        ("spatial", "dual")]


# --- the paired bootstrap --------------------------------------------------------------------------------------
def test_bootstrap_constant_difference_is_exact():
    a = {f"i{k}": 0.5 + 0.01 * k for k in range(20)}
    b = {k: v - 0.1 for k, v in a.items()}
    r = paired_bootstrap(a, b, n_boot=200, seed=3)
    assert r["diff"] == pytest.approx(0.1) and r["ci"] == pytest.approx([0.1, 0.1])
    assert (r["n"], r["wins"], r["losses"], r["ties"], r["left_out"]) == (20, 20, 0, 0, 0)


def test_bootstrap_two_images_by_hand():
    # differences 0 and 1: a resample's mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4, so the 2.5% and
    # 97.5% quantiles are 0 and 1, and about half the resamples have mean 0.5
    r = paired_bootstrap({"x": 0.7, "y": 0.9}, {"x": 0.7, "y": -0.1}, n_boot=4000, seed=0)
    assert r["diff"] == pytest.approx(0.5) and r["ci"] == pytest.approx([0.0, 1.0])
    assert (r["wins"], r["ties"]) == (1, 1)
    rng = np.random.default_rng(0)  # the documented procedure, step by step
    means = np.array([0.0, 1.0])[rng.integers(0, 2, size=(1000, 2))].mean(1)
    assert np.mean(means == 0.5) == pytest.approx(0.5, abs=0.05)


def test_bootstrap_matches_the_normal_interval_seeded_and_drops_missing():
    rng = np.random.default_rng(1)
    d = rng.normal(0.05, 0.1, 400)
    a = {f"i{k}": 0.6 + v for k, v in enumerate(d)}
    b = {f"i{k}": 0.6 for k in range(400)} | {"only_b": 0.3}
    a["i0"] = float("nan")
    r = paired_bootstrap(a, b, n_boot=4000, seed=5)
    kept = d[1:]
    half = 1.96 * kept.std(ddof=1) / np.sqrt(kept.size)
    assert r["n"] == 399 and r["left_out"] == 2 and r["diff"] == pytest.approx(kept.mean())
    assert r["ci"][0] == pytest.approx(kept.mean() - half, abs=0.2 * half)
    assert r["ci"][1] == pytest.approx(kept.mean() + half, abs=0.2 * half)
    assert paired_bootstrap(a, b, n_boot=4000, seed=5) == r  # seeded: the same interval every time
    assert "95% CI" in format_paired(r) and "n = 399 images" in format_paired(r)
    with pytest.raises(ValueError, match="no image"):
        paired_bootstrap({"x": 1.0}, {"y": 1.0})


def test_per_image_readers(tmp_path):
    res = {"rows": [{"id": "a", "dice": 0.5}, {"id": "b", "dice": 0.7}]}
    (tmp_path / "t.json").write_text(json.dumps(res))
    (tmp_path / "t_per_image.csv").write_text("id,dice\na,0.5\nb,0.7\n")
    assert per_image(res) == per_image(tmp_path / "t.json") == per_image(tmp_path / "t_per_image.csv") == \
        {"a": 0.5, "b": 0.7}
    m = mean_per_image([{"a": 0.5, "b": 0.7}, {"a": 0.7, "c": 1.0}])
    assert m == {"a": pytest.approx(0.6)}
