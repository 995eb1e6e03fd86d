"""SF-RecSAM's CPU preset on real BUSI images, end to end through the CLI (a small sub-split, 1 epoch per stage,
64 px): train both stages -> evaluate with the uncertainty maps at each image's original size -> report."""
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sonokit.cli import app
from sonokit.data.io import safe_name
from sonokit.data.splits import load_split, save_split

from ..conftest import REPO, ok

runner = CliRunner()
pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _busi_subsplit(tmp_path, n_train=16, n_val=4, n_test=6):
    sp = load_split(REPO / "splits" / "busi_v1.json")
    pick = lambda part, n: [i for i in sp[part] if not i.startswith("normal")][:n]
    train = pick("train", n_train)
    sp = dict(sp, train=train, val=pick("val", n_val), test=pick("test", n_test), subsets={"0": {"1": train}})
    return save_split(sp, tmp_path / "split.json")


def test_sfrecsam_preset_trains_evaluates_and_reports_on_busi(real_busi, tmp_path):
    split = _busi_subsplit(tmp_path)
    run = tmp_path / "run"
    out = ok(runner.invoke(app, ["train", "segment", "--config", str(REPO / "configs" / "sfrecsam_busi_cpu.yaml"),
                                 "--out", str(run), "--set", f"data.root={real_busi}", "--set", f"data.split={split}",
                                 "--set", "data.image_size=64", "--set", "optim.epochs=1",
                                 "--set", "corrector:model.mc_samples=4", "--set", "trainer.progress=none"]))
    assert "stage 2/2: corrector" in out and out.count("trainable parameters:") == 2
    for stage in ("base", "corrector"):
        info = json.loads((run / stage / "run.json").read_text())
        assert info["status"] == "finished" and info["parameters"]["trainable"] > 0
    ok(runner.invoke(app, ["evaluate", "--checkpoint", str(run / "corrector" / "checkpoints" / "best.ckpt"),
                           "--save-uncertainty"]))
    ev_dir = run / "corrector" / "eval"
    ev = json.loads((ev_dir / "test.json").read_text())
    assert ev["n"] == 6 and 0 <= ev["aggregate"]["dice"]["mean"] <= 1
    for row in ev["rows"]:  # the maps at the ORIGINAL image size
        for m in ("uncertainty", "fp", "fn"):
            a = np.asarray(Image.open(ev_dir / f"test_{m}" / f"{safe_name(row['id'])}.png"))
            assert a.shape == (row["height"], row["width"]) and row["height"] > 64, (m, row["id"])
    ok(runner.invoke(app, ["report", str(run)]))
    assert "Uncertainty: " in (run / "report.html").read_text()
