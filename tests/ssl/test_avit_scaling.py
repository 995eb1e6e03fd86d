"""benchmarks/avit_scaling.py on a tiny A-ViT: one device timed on in-memory images, the plan's arithmetic
(5.2M images / (devices x rate)), a missing shard folder reported, not fatal."""
import json
import runpy
import sys

import pytest
import yaml

from ..conftest import REPO


def test_the_scaling_script_times_one_device_and_plans_from_it(tmp_path, monkeypatch):
    cfg = {"task": "pretrain", "data": {"root": str(tmp_path / "none"), "image_size": 32, "batch_size": 2,
                                        "num_workers": 0},
           "encoder": {"name": "avit_tiny_patch16", "acdt_blocks": [11]},
           "method": {"name": "arl", "out_dim": 32, "hidden_dim": 16, "bottleneck_dim": 8, "n_local": 1,
                      "local_size": 16, "adv_patches": 8}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.setattr(sys, "argv", ["avit_scaling.py", "--config", str(tmp_path / "c.yaml"), "--steps", "2",
                                      "--shards", str(tmp_path / "none"), "--gpus", "1,8", "--out", str(tmp_path)])
    runpy.run_path(str(REPO / "benchmarks" / "avit_scaling.py"), run_name="__main__")
    doc = json.loads((tmp_path / "avit_scaling.json").read_text())
    m = doc["model"]
    assert m["steps_timed"] == 2 and m["batch_per_device"] == 2 and m["images_per_s"] == pytest.approx(2 / m["median_step_s"])
    assert [p["devices"] for p in doc["plan"]] == [1, 8]
    assert doc["plan"][1]["epoch_hours_at_e1"] == pytest.approx(5.2e6 / (8 * m["images_per_s"]) / 3600)
    assert "no shard folder" in doc["pipeline"]["skipped"]
    assert "e = 1 here" in (tmp_path / "avit_scaling.md").read_text()
