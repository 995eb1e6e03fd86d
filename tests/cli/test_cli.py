"""The CLI end to end on a tiny phantom: simulate -> check -> split -> train -> resume -> evaluate -> segment -> report."""
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from sonokit.cli import app, main
from sonokit.config import load_config
from sonokit.errors import ConfigError

from ..conftest import make_phantom, ok, save

runner = CliRunner()

TINY = ["--set", "model.name=resunet_resnet10t", "--set", "model.decoder_channels=[16,16,16,8,8]",
        "--set", "data.image_size=48", "--set", "data.batch_size=8", "--set", "trainer.progress=none",
        "--set", "optim.epochs=1"]


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    d = make_phantom(tmp_path_factory.mktemp("ph"))
    return d


@pytest.fixture(scope="module")
def trained(phantom):
    run = phantom / "run"
    ok(runner.invoke(app, ["train", "segment", "--out", str(run), "--set", f"data.root={phantom / 'ph'}",
                                 "--set", f"data.split={phantom / 'split.json'}", *TINY]))
    n_train = len(json.loads((phantom / "split.json").read_text())["train"])
    assert json.loads((run / "data.json").read_text())["train"] == n_train
    return run


def test_help_explains_every_command():
    out = ok(runner.invoke(app, ["--help"]))
    for cmd in ("data", "train", "evaluate", "segment", "report", "simulate", "models"):
        assert cmd in out
    assert "--checkpoint" in ok(runner.invoke(app, ["segment", "--help"]))


def test_data_check_phantom(phantom):
    out = ok(runner.invoke(app, ["data", "check", str(phantom / "ph"), "--json", str(phantom / "check.json")]))
    assert "24 of 24" in out
    s = json.loads((phantom / "check.json").read_text())
    assert s["images"] == 24 and set(s["classes"]) <= {"hypoechoic", "hyperechoic"}


def test_train_writes_run_and_resume(trained, phantom):
    assert (trained / "checkpoints" / "last.ckpt").exists() and (trained / "checkpoints" / "best.ckpt").exists()
    assert (trained / "metrics.csv").exists() and (trained / "config.yaml").exists()
    # a second train into the same folder without --resume refuses instead of overwriting
    r = runner.invoke(app, ["train", "segment", "--out", str(trained), "--set", f"data.root={phantom / 'ph'}",
                            "--set", f"data.split={phantom / 'split.json'}", *TINY])
    assert isinstance(r.exception, ConfigError) and "pass --resume" in str(r.exception)
    from sonokit.serialization import load_checkpoint

    before = load_checkpoint(trained / "checkpoints" / "last.ckpt")
    epochs_logged = lambda: [ln.split(",")[0] for ln in (trained / "metrics.csv").read_text().splitlines()[1:]]  # noqa: E731
    assert epochs_logged() == ["0"]
    # --resume of a finished run does nothing (and says so); --epochs 2 continues from last.ckpt, the config
    # coming from the run folder
    out = ok(runner.invoke(app, ["train", "segment", "--out", str(trained), "--resume"]))
    assert "is finished" in out and load_checkpoint(trained / "checkpoints" / "last.ckpt")["global_step"] == before["global_step"]
    ok(runner.invoke(app, ["train", "segment", "--out", str(trained), "--resume", "--epochs", "2"]))
    ck = load_checkpoint(trained / "checkpoints" / "last.ckpt")
    assert ck["epoch"] > before["epoch"] and ck["global_step"] == 2 * before["global_step"]
    assert epochs_logged() == ["0", "1"]  # one row per epoch, the first one kept across the resume
    assert not list((trained / "checkpoints").glob("*.tmp"))
    # a resume that changes the training setup is refused, naming the key
    r = runner.invoke(app, ["train", "segment", "--out", str(trained), "--resume", "--epochs", "3",
                            "--set", "optim.lr=0.5"])
    assert isinstance(r.exception, ConfigError) and "optim.lr" in str(r.exception)


def test_evaluate_segment_report(trained, phantom, tmp_path):
    out = ok(runner.invoke(app, ["evaluate", "--checkpoint", str(trained / "checkpoints" / "last.ckpt"), "--split", "test"]))
    assert "dice" in out
    ev = json.loads((trained / "eval" / "test.json").read_text())
    assert ev["n"] == len(json.loads((phantom / "split.json").read_text())["test"]) and ev["hd95_unit"] == "mm"
    assert 0 <= ev["aggregate"]["dice"]["mean"] <= 1
    # segment: a PNG of another size and a DICOM file, CPU
    big = (np.random.default_rng(0).random((70, 90)) * 255).astype(np.uint8)
    save(tmp_path / "in" / "big.png", big)
    from ..data.test_datasets import _dicom

    _dicom(tmp_path / "in" / "scan.dcm", big[:40, :50].copy())
    out = ok(runner.invoke(app, ["segment", str(tmp_path / "in"), "--checkpoint", str(trained / "checkpoints" / "last.ckpt"),
                                 "--out", str(tmp_path / "seg")]))
    from sonokit.data.io import read_mask

    m, _ = read_mask(tmp_path / "seg" / "big_mask.png")
    assert m.shape == (70, 90) and (tmp_path / "seg" / "big_overlay.png").exists()
    assert read_mask(tmp_path / "seg" / "scan_mask.png")[0].shape == (40, 50)
    assert "foreground" in out
    out = ok(runner.invoke(app, ["report", str(trained)]))
    html = (trained / "report.html").read_text()
    assert "<table>" in html and html.count("data:image/png;base64,") >= 2 and "Gallery" in html
    assert "http" not in re.sub(r"<!doctype html>", "", html)[:2000]  # self-contained


def test_bad_config_key_and_values(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.lrr'; did you mean 'lr'\?"):
        load_config(cfg)
    with pytest.raises(ConfigError, match="optim.lr must be a number"):
        load_config(None, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_unknown_model_fails_before_reading_data(tmp_path):
    r = runner.invoke(app, ["train", "segment", "--out", str(tmp_path / "r"), "--set", "model.name=resunet_resnet5O",
                            "--set", "data.root=/nonexistent"])
    assert "did you mean 'resunet_resnet50'" in str(r.exception)


def test_main_prints_one_clear_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("sys.argv", ["sonokit", "data", "check", str(tmp_path / "missing"), "--format", "busi"])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "missing" in err and "Traceback" not in err


@pytest.mark.parametrize("argv,says", [(["train", "segment", "--bogus"], "No such option: --bogus"),
                                       (["evaluate", "--split"], "Option '--split' requires an argument"),
                                       (["no-such-command"], "No such command 'no-such-command'")])
def test_main_reports_usage_errors_without_a_traceback(monkeypatch, capsys, argv, says):
    # typer >= 0.2x raises its vendored click's exceptions, which are not click.ClickException subclasses
    monkeypatch.setattr("sys.argv", ["sonokit", *argv])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"Error: {says}" in err and "Traceback" not in err


def test_training_skips_bad_file_or_fails_fast(phantom, tmp_path):
    import shutil

    ph = tmp_path / "ph"
    shutil.copytree(phantom / "ph", ph)
    (ph / "images" / "phantom_0001.png").write_bytes(b"corrupt")
    args = ["train", "segment", "--set", f"data.root={ph}", "--set", f"data.split={phantom / 'split.json'}", *TINY]
    ok(runner.invoke(app, [*args, "--out", str(tmp_path / "run")]))
    skipped = json.loads((tmp_path / "run" / "data.json").read_text())["skipped"]
    assert [s[0] for s in skipped] == ["phantom_0001"]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "run2"), "--set", "data.fail_fast=true"])
    assert r.exit_code != 0 and "phantom_0001.png" in str(r.exception)


def test_export_safetensors_matches_checkpoint(trained, tmp_path):
    import torch

    from sonokit.export import load_safetensors_model
    from sonokit.inference import Segmenter

    ok(runner.invoke(app, ["export", "--checkpoint", str(trained / "checkpoints" / "last.ckpt"),
                           "--out", str(tmp_path / "m.safetensors")]))
    model, meta = load_safetensors_model(tmp_path / "m.safetensors")
    seg = Segmenter.from_checkpoint(trained / "checkpoints" / "last.ckpt")
    x = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(model(x), seg.model(x), atol=1e-5)
    assert meta["image_size"] == "48"
    r = runner.invoke(app, ["export", "--checkpoint", str(trained / "checkpoints" / "last.ckpt"), "--out", str(tmp_path / "m.bin")])
    assert "must end in .safetensors or .onnx" in str(r.exception)


def test_export_onnx_runs_if_available(trained, tmp_path):
    pytest.importorskip("onnx", reason="ONNX export is the optional extra sonokit[onnx]")
    ok(runner.invoke(app, ["export", "--checkpoint", str(trained / "checkpoints" / "last.ckpt"),
                           "--out", str(tmp_path / "m.onnx")]))
    import onnx

    onnx.checker.check_model(str(tmp_path / "m.onnx"))


def test_flip_tta_is_the_mean_of_image_and_mirror_predictions(trained):
    from sonokit.inference import Segmenter

    ck = trained / "checkpoints" / "last.ckpt"
    plain, tta = Segmenter.from_checkpoint(ck), Segmenter.from_checkpoint(ck, tta=True)
    img = np.random.default_rng(1).random((1, 48, 48)).astype(np.float32)  # already square: no resize
    p = plain.predict(img)
    p_mirror = plain.predict(img[..., ::-1].copy())[..., ::-1]
    np.testing.assert_allclose(tta.predict(img), 0.5 * (p + p_mirror), atol=1e-5)
    out = ok(runner.invoke(app, ["evaluate", "--checkpoint", str(ck), "--split", "test", "--tta"]))
    assert "dice" in out
