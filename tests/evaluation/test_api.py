"""sonokit.evaluate: what it refuses, and how it names results (issue 19's smaller items)."""
import shutil

import pytest
from typer.testing import CliRunner

import sonokit
from sonokit.cli import app
from sonokit.errors import CheckpointError, ConfigError, DataError

from ..conftest import make_phantom, ok

runner = CliRunner()
SEG = ["--set", "model.name=resunet_resnet10t", "--set", "model.decoder_channels=[8,8,8,8,8]",
       "--set", "data.image_size=64", "--set", "data.batch_size=8", "--set", "trainer.progress=none",
       "--set", "optim.epochs=1"]
ENH = ["--set", "model.name=dncnn_small", "--set", "data.patch_size=32", "--set", "data.batch_size=4",
       "--set", "data.patches_per_epoch=8", "--set", "optim.epochs=1", "--set", "trainer.progress=none",
       "--set", "target.kind=original"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = make_phantom(tmp_path_factory.mktemp("ev"), size=64)  # 64 px: room for the enhancer's 32 px patches + blur
    data = ["--set", f"data.root={d / 'ph'}", "--set", f"data.split={d / 'split.json'}"]
    ok(runner.invoke(app, ["train", "segment", "--out", str(d / "seg"), *data, *SEG]))
    ok(runner.invoke(app, ["train", "enhance", "--out", str(d / "enh"), *data, *ENH]))
    return d


def test_split_part_needs_a_split_file_and_names_are_per_folder(runs, tmp_path):
    ck = runs / "seg" / "checkpoints" / "best.ckpt"
    other = tmp_path / "other_phantom"
    shutil.copytree(runs / "ph", other)
    with pytest.raises(ConfigError, match="--split test: there is no split file for .*--split all"):
        sonokit.evaluate(ck, data=other, log=None)
    a = sonokit.evaluate(ck, data=other, split="all", log=None)
    assert a["name"] == "other_phantom_all" and a["n"] == 24
    b = sonokit.evaluate(ck, data=runs / "ph", split="all", log=None)  # another folder: another name
    assert b["name"] == "ph_all" and (runs / "seg" / "eval" / "other_phantom_all.json").exists()


def test_a_checkpoint_of_another_kind_is_named_for_what_it_is(runs):
    enh = runs / "enh" / "checkpoints" / "best.ckpt"
    with pytest.raises(CheckpointError, match="is an enhancement model .*use it with `sonokit enhance`"):
        sonokit.evaluate(enh, log=None)
    r = runner.invoke(app, ["segment", str(runs / "ph" / "images" / "phantom_0000.png"), "--checkpoint", str(enh),
                            "--out", str(runs / "x")])
    assert isinstance(r.exception, CheckpointError) and "enhancement model" in str(r.exception)
    seg = runs / "seg" / "checkpoints" / "best.ckpt"
    r = runner.invoke(app, ["enhance", str(runs / "ph" / "images" / "phantom_0000.png"), "--checkpoint", str(seg),
                            "--out", str(runs / "y")])
    assert isinstance(r.exception, CheckpointError) and "segmentation model" in str(r.exception)


def test_a_checkpoint_without_its_model_record_is_a_clear_error(runs, tmp_path):
    import torch

    from sonokit.serialization import load_checkpoint

    ck = load_checkpoint(runs / "seg" / "checkpoints" / "best.ckpt")
    del ck["hyper_parameters"]["model"]
    torch.save(ck, tmp_path / "nomodel.ckpt")
    for argv in (["evaluate", "--checkpoint"], ["export", "--out", str(tmp_path / "m.safetensors"), "--checkpoint"]):
        r = runner.invoke(app, [*argv, str(tmp_path / "nomodel.ckpt")])
        assert isinstance(r.exception, CheckpointError) and "records no model" in str(r.exception), r.output


def test_test_images_that_were_training_images_are_refused(runs, tmp_path):
    import json

    from sonokit.data.splits import save_split

    seg = runs / "seg"
    split = seg / "split_copy.json"
    shutil.copy(runs / "split.json", split)
    sp = json.loads(split.read_text())
    ck = seg / "checkpoints" / "best.ckpt"
    moved = dict(sp, test=sp["test"] + sp["train"][:3], train=sp["train"][3:])
    save_split({k: v for k, v in moved.items() if k != "hash"}, split, overwrite=True)
    with pytest.raises(DataError, match="3 of the .* 'test' images were training or validation images"):
        sonokit.evaluate(ck, split_file=split, log=None)
    res = sonokit.evaluate(ck, split_file=split, allow_changed_data=True, name="leaky", log=None)
    assert res["data_warnings"] and res["n"] == len(moved["test"])
