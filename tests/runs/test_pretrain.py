"""`sonokit pretrain` end to end on a tiny phantom: pretrain -> resume -> encoder file -> fine-tune a Res-UNet."""
import json

import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from sonokit.cli import app
from sonokit.errors import CheckpointError
from sonokit.models import create_model

from ..conftest import make_phantom, ok

runner = CliRunner()

TINY = ["--set", "encoder.name=resnet10t", "--set", "data.image_size=48", "--set", "data.batch_size=8",
        "--set", "trainer.progress=none", "--set", "method.num_negatives=8"]


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    d = make_phantom(tmp_path_factory.mktemp("ssl"))
    return d


@pytest.fixture(scope="module")
def pretrained(phantom):
    run = phantom / "pre"
    ok(runner.invoke(app, ["pretrain", "--out", str(run), "--set", f"data.root={phantom / 'ph'}",
                           "--set", f"data.split={phantom / 'split.json'}", "--set", "method.name=rcl+perceptual",
                           "--set", "method.pretext=freq+cross_jigsaw", "--set", "optim.epochs=3", *TINY]))
    return run


def test_pretrain_uses_train_split_only_and_logs_every_loss_term(pretrained, phantom):
    n_train = len(json.loads((phantom / "split.json").read_text())["train"])
    assert json.loads((pretrained / "data.json").read_text())["train"] == n_train
    rows = [ln.split(",") for ln in (pretrained / "metrics.csv").read_text().splitlines()]
    head = rows[0]
    col = head.index("train_loss")
    losses = [float(r[col]) for r in rows[1:] if len(r) > col and r[col]]
    assert len(losses) == 3 and all(map(torch.isfinite, torch.tensor(losses)))  # one row per epoch
    for term in ("train_nce", "train_rcl", "train_perceptual"):
        assert term in head


def test_encoder_file_loads_into_resunet_and_fine_tunes(pretrained, phantom):
    enc_file = pretrained / "encoder.safetensors"
    sd = load_file(str(enc_file))
    model = create_model("resunet_resnet10t", encoder_checkpoint=str(enc_file), decoder_channels=(16, 16, 16, 8, 8))
    own = model.encoder.state_dict()
    assert all(torch.equal(own[k], v) for k, v in sd.items()) and set(sd) == set(own)
    run = phantom / "ft"
    ok(runner.invoke(app, ["train", "segment", "--out", str(run), "--set", f"data.root={phantom / 'ph'}",
                           "--set", f"data.split={phantom / 'split.json'}", "--encoder-checkpoint", str(enc_file),
                           "--set", "model.name=resunet_resnet10t", "--set", "model.decoder_channels=[16,16,16,8,8]",
                           "--set", "data.image_size=48", "--set", "trainer.progress=none", "--set", "optim.epochs=1"]))
    assert (run / "checkpoints" / "best.ckpt").exists()
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["encoder_checkpoint"] == str(enc_file.resolve())
    res = runner.invoke(app, ["train", "segment", "--out", str(phantom / "ft2"), "--encoder-checkpoint",
                              str(phantom / "nope.safetensors")])
    assert res.exit_code != 0 and "nope.safetensors" in res.output and "does not exist" in res.output
    with pytest.raises(CheckpointError, match="holds a 'resnet10t' encoder"):
        create_model("resunet_resnet18", encoder_checkpoint=str(enc_file))


def _epochs(ck) -> int:
    return ck["callbacks"]["sonokit_run_state"]["epochs_done"]


def test_pretrain_resume_continues(pretrained, phantom):
    from sonokit.serialization import load_checkpoint

    before = load_checkpoint(pretrained / "checkpoints" / "last.ckpt")
    assert _epochs(before) == 3 and bool(before["state_dict"]["model.bank.filled"])
    out = runner.invoke(app, ["pretrain", "--out", str(pretrained), "--set", f"data.root={phantom / 'ph'}", *TINY])
    assert out.exit_code != 0 and "already holds a checkpoint" in str(out.exception)
    ok(runner.invoke(app, ["pretrain", "--out", str(pretrained), "--resume", "--set", f"data.root={phantom / 'ph'}",
                           "--set", f"data.split={phantom / 'split.json'}", "--set", "method.name=rcl+perceptual",
                           "--set", "method.pretext=freq+cross_jigsaw", "--set", "optim.epochs=4", *TINY]))
    ck = load_checkpoint(pretrained / "checkpoints" / "last.ckpt")
    assert _epochs(ck) == 4 and ck["global_step"] > before["global_step"]  # one more epoch after resuming
    bank0, bank1 = before["state_dict"]["model.bank.bank"], ck["state_dict"]["model.bank.bank"]
    assert not torch.equal(bank0, bank1)  # the restored bank kept being updated


@pytest.mark.parametrize("override, match", [
    ("method.pretext=jigsaw+rotate", "unknown pretext transform"),
    ("method.name=pirll", "did you mean 'pirl'"),
    ("data.image_size=50", "does not divide the 50px"),
    ("method.freq.radius=[-3, 50]", "radius"),
    ("method.freq.radius=[10]", "method.freq: band-stop radius must be a pair [min, max]"),
    ("method.freq.angle=[80, 10]", "method.freq: band-stop angle must be (min, max) with 0 <= min <= max <= 90"),
    ("method.temperature=0", "temperature"),
])
def test_pretrain_bad_config_values(phantom, tmp_path, override, match):
    res = runner.invoke(app, ["pretrain", "--out", str(tmp_path / "r"), "--set", f"data.root={phantom / 'ph'}",
                              *TINY, "--set", override])
    assert res.exit_code != 0 and match in str(res.exception), (res.output, res.exception)
