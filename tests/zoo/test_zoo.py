"""Shipped models: the index, the checked load, `sonokit segment` without a checkpoint, and (real data) the
card's test Dice reproduced from the shipped file."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sonokit.cli import app
from sonokit.errors import CheckpointError, ConfigError
from sonokit.zoo import entries, entry, load, weights

from ..conftest import ok

runner = CliRunner()


def test_index_lists_the_breast_model_with_its_card():
    e = entry("breast")
    assert e.name == "busi-lesion" and entry("busi-lesion") == e and e in entries()
    assert e.path.exists() and e.card_path.exists() and e.dtype == "float16"
    assert "Known failure modes" in e.card_path.read_text() and "fp16 check" in e.card_path.read_text()
    total = sum(x.path.stat().st_size for x in entries())
    assert total <= 60 * 2**20  # the budget for all shipped weights
    with pytest.raises(ConfigError, match=r"no shipped model .liver.; shipped: busi-lesion \(--task breast\)"):
        entry("liver")


def test_load_checks_the_digest_and_predicts_at_any_size():
    e = entry("breast")
    with pytest.raises(CheckpointError, match="damaged or was replaced"):
        weights(dataclasses.replace(e, sha256="0" * 64))
    seg = load("busi-lesion")
    prob = seg.predict(np.random.default_rng(0).random((90, 130)).astype(np.float32))
    assert prob.shape == (90, 130) and prob.dtype == np.float32 and 0 <= prob.min() and prob.max() <= 1
    import sonokit

    assert sonokit.load is load


def test_segment_without_a_checkpoint_uses_the_shipped_model(tmp_path):
    img = tmp_path / "scan.png"
    Image.fromarray((np.random.default_rng(1).random((70, 90)) * 255).astype(np.uint8)).save(img)
    out = ok(runner.invoke(app, ["segment", str(img), "--out", str(tmp_path / "o"), "--threads", "1"]))
    assert "shipped 'busi-lesion'" in out and (tmp_path / "o" / "scan_mask.png").exists()
    assert "busi-lesion  (sonokit segment IMAGES --task breast" in ok(runner.invoke(app, ["models", "--pretrained"]))
    r = runner.invoke(app, ["segment", str(img), "--out", str(tmp_path / "x"), "--task", "liver"])
    assert r.exit_code != 0 and "no shipped model 'liver'" in str(r.exception)


@pytest.mark.realdata
@pytest.mark.slow
def test_the_cards_test_dice_comes_back_from_the_shipped_file(real_busi):
    from sonokit.data import open_dataset
    from sonokit.data.splits import filter_classes, load_split, select_ids
    from sonokit.evaluation import evaluate_segmentation

    from ..conftest import REPO

    reader = open_dataset(real_busi, "busi")
    ids = filter_classes(select_ids(load_split(REPO / "splits" / "busi_v1.json"), "test"), reader,
                         ["benign", "malignant"])
    res = evaluate_segmentation(load("breast"), data_root=real_busi, data_format="busi", ids=ids,
                                save_predictions=False)
    card = entry("breast").card_path.read_text()
    assert res["n"] == 130 and f"{res['aggregate']['dice']['mean']:.3f} ± {res['aggregate']['dice']['std']:.3f}" in card
    json.dumps(res["aggregate"])


def test_shipped_model_in_onnx_runtime_matches_torch_and_then_runs_without_torch(tmp_path):
    import os
    import subprocess
    import sys

    pytest.importorskip("onnxruntime")
    from sonokit.zoo import graph_paths, lite

    x = np.random.default_rng(2).random((90, 130)).astype(np.float32)
    logs: list[str] = []
    a = load("breast").predict(x)
    b = load("breast", backend="onnx", threads=1, log=logs.append).predict(x)  # made now, or cached earlier
    assert np.abs(a - b).max() < 1e-3
    graph, side = graph_paths(entry("breast"))
    assert graph.exists() and json.loads(side.read_text())["sha256"] == entry("breast").sha256
    c = lite("breast", threads=1).predict(x)
    assert np.abs(a - c).max() < 1e-3
    with pytest.raises(ConfigError, match="must be one of torch, onnx"):
        load("breast", backend="tensorrt")
    img = tmp_path / "scan.png"
    Image.fromarray((x * 255).astype(np.uint8)).save(img)
    load("fetal-head", backend="onnx", threads=1)  # its graph too: the head-circumference path stays torch-free
    code = ("import sys; from sonokit.cli import main; sys.argv = ['sonokit', 'segment', sys.argv[1], '--out', "
            "sys.argv[2], '--threads', '1', '--task', sys.argv[3]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\nprint('no torch')")
    for task in ("breast", "fetal-head"):
        r = subprocess.run([sys.executable, "-c", code, str(img), str(tmp_path / "o"), task], capture_output=True,
                           text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert r.returncode == 0 and "no torch" in r.stdout, r.stdout + r.stderr
    assert (tmp_path / "o" / "scan_mask.png").exists() and (tmp_path / "o" / "segmentation.csv").exists()


def test_docs_page_holds_every_card():
    from sonokit.zoo.docs import docs_text

    from ..conftest import REPO

    assert (REPO / "docs" / "models.md").read_text() == docs_text(), "regenerate: python -m sonokit.zoo.build ..."
    for e in entries():
        assert f"## Model card: {e.name}" in docs_text()


def test_fetal_head_model_reports_head_circumference(tmp_path):
    import csv

    e = entry("fetal-head")
    assert e.name == "hc18-head" and e.measure == "head_circumference" and "Head circumference" in e.card_path.read_text()
    yy, xx = np.mgrid[:120, :160]
    im = 0.2 + 0.6 * (np.abs(((yy - 60) / 45) ** 2 + ((xx - 80) / 65) ** 2 - 1) < 0.15)  # a bright skull ring
    img = tmp_path / "head.png"
    Image.fromarray((im * 255).astype(np.uint8)).save(img)
    for extra, unit in [([], "px"), (["--pixel-size", "0.2"], "mm")]:
        out = ok(runner.invoke(app, ["segment", str(img), "--task", "fetal-head", "--out", str(tmp_path / unit),
                                     "--threads", "1", "--backend", "torch", *extra]))
        assert "shipped 'hc18-head'" in out and "head circumference" in out
        row = next(csv.DictReader(open(tmp_path / unit / "segmentation.csv")))
        assert row["head_circumference_unit"] == unit


@pytest.mark.realdata
@pytest.mark.slow
def test_shipped_fetal_head_model_measures_hc18_test_heads(real_hc18):
    from sonokit.data import open_dataset
    from sonokit.data.splits import load_split, select_ids
    from sonokit.evaluation import evaluate_segmentation

    from ..conftest import REPO

    ids = select_ids(load_split(REPO / "splits" / "hc18_v1.json"), "test")
    res = evaluate_segmentation(load("fetal-head"), data_root=real_hc18, data_format="hc18", ids=ids,
                                save_predictions=False)
    agg, card = res["aggregate"], entry("fetal-head").card_path.read_text()
    for k in ("dice", "hc_abs_err_mm", "hc_mask_abs_err_mm"):  # the card's numbers come back from the shipped file
        assert f"{agg[k]['mean']:.3f} ± {agg[k]['std']:.3f} (n = 200)" in card, k
    assert agg["hc_mask_abs_err_mm"]["mean"] < 2  # the ellipse fit on the reference masks agrees with the CSV
    assert open_dataset(real_hc18, "hc18").get(ids[0]).spacing is not None


def test_shipped_blind_enhancer_torch_and_onnx_and_cli(tmp_path):
    from sonokit.enhance import enhance_image
    from sonokit.zoo import load_enhancer

    e = entry("blind", task="enhance")
    assert e.name == "busi-enhance" and "gaussian 25" in e.card_path.read_text()
    with pytest.raises(ConfigError, match="no shipped model"):
        entry("breast", task="enhance")  # a segmentation alias is not an enhancer
    with pytest.raises(ConfigError, match="load_enhancer"):
        load("blind")
    x = np.random.default_rng(3).random((45, 71)).astype(np.float32)
    net, hp = load_enhancer("blind")
    a = enhance_image(net, x)
    assert a.shape == x.shape and hp["zoo"] == "busi-enhance" and hp["image"]["max_side"] == 256
    pytest.importorskip("onnxruntime")
    onet, _ = load_enhancer("blind", backend="onnx", threads=1)
    assert np.abs(enhance_image(onet, x) - a).max() < 1e-4
    img = tmp_path / "scan.png"
    Image.fromarray((x * 255).astype(np.uint8)).save(img)
    out = ok(runner.invoke(app, ["enhance", str(img), "--out", str(tmp_path / "o"), "--threads", "1"]))
    assert "shipped 'busi-enhance'" in out and (tmp_path / "o" / "scan_enhanced.png").exists()


def test_refine_without_a_checkpoint_uses_the_shipped_guide(tmp_path):
    img = tmp_path / "scan.png"
    Image.fromarray((np.random.default_rng(4).random((40, 56)) * 255).astype(np.uint8)).save(img)
    out = ok(runner.invoke(app, ["enhance", str(img), "--out", str(tmp_path / "o"), "--refine", "nllr-wiener",
                                 "--threads", "1", "--backend", "torch"]))
    assert "shipped 'busi-denoise-guide'" in out and (tmp_path / "o" / "scan_enhanced.png").exists()
    r = runner.invoke(app, ["enhance", str(img), "--out", str(tmp_path / "x"), "--model", "liver"])
    assert r.exit_code != 0 and "no shipped model 'liver'" in str(r.exception)
