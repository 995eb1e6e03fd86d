"""Integration on the real public data (skipped, with the reason, when ../shared/data is absent)."""
import json

import pytest
from typer.testing import CliRunner

from sonokit.cli import app
from sonokit.data.splits import load_split, save_split

from ..conftest import REPO

runner = CliRunner()
pytestmark = pytest.mark.realdata


def _tiny_split(src, tmp_path, n_train=16, n_test=6):
    """A small sub-split of a committed split file (same ids, fewer of them) to keep the test fast."""
    sp = load_split(src)
    sp = dict(sp, train=sp["train"][:n_train], val=sp["val"][:4], test=sp["test"][:n_test],
              subsets={"0": {"1": sp["train"][:n_train]}})
    return save_split(sp, tmp_path / "split.json")


@pytest.mark.parametrize("name,unit", [("busi", "px"), ("hc18", "mm")])
def test_train_evaluate_on_real_data(name, unit, tmp_path, request):
    root = request.getfixturevalue(f"real_{name}")
    split = _tiny_split(REPO / "splits" / f"{name}_v1.json", tmp_path)
    args = ["train", "segment", "--out", str(tmp_path / "run"), "--set", f"data.root={root}", "--set", f"data.format={name}",
            "--set", f"data.split={split}", "--set", "model.name=resunet_resnet10t", "--set", "model.decoder_channels=[16,16,16,8,8]",
            "--set", "data.image_size=64", "--set", "data.batch_size=8", "--set", "optim.epochs=1", "--set", "trainer.progress=none"]
    if name == "busi":
        args += ["--set", "data.classes=[benign, malignant]"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, (r.output, r.exception)
    r = runner.invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "run" / "checkpoints" / "last.ckpt")])
    assert r.exit_code == 0, (r.output, r.exception)
    ev = json.loads((tmp_path / "run" / "eval" / "test.json").read_text())
    assert ev["hd95_unit"] == unit and ev["n"] >= 1
    # evaluated at the ORIGINAL image size
    assert all(row["height"] > 64 and row["width"] > 64 for row in ev["rows"])
