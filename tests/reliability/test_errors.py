"""Clear errors for the cases the reliability corpus found ending in a traceback or a silent exit code."""
import errno

import numpy as np
import pytest
import torch

from sonokit.config import load_config
from sonokit.data.io import atomic_write
from sonokit.errors import ConfigError, WriteError

from ..conftest import blob, save


@pytest.mark.parametrize("override,says", [("data.batch_size=0", "data.batch_size must be >= 1, found 0"),
                                           ("optim.epochs=-3", "optim.epochs must be >= 1, found -3"),
                                           ("optim.lr=0", "optim.lr must be > 0"),
                                           ("data.fraction=1.5", "data.fraction must be > 0 and <= 1"),
                                           ("trainer.num_threads=0", "trainer.num_threads must be >= 1")])
def test_out_of_range_values_name_the_key(override, says):
    with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
        load_config(None, [override], task="segment")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_device_this_machine_lacks_is_named():
    from sonokit.inference import torch_device

    with pytest.raises(ConfigError, match="--device cuda:0: no CUDA device is available"):
        torch_device("cuda:0")
    with pytest.raises(ConfigError, match="--device 'gpu0' is not a device"):
        torch_device("gpu0")
    assert torch_device("cpu").type == "cpu"


def test_a_failing_write_keeps_the_old_file_and_says_why(tmp_path, monkeypatch):
    p = atomic_write(tmp_path / "last.ckpt", lambda tmp: torch.save({"step": 1}, tmp))

    def full(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(WriteError, match="could not write '.*last.ckpt': No space left on device; the previous version"):
        atomic_write(p, lambda tmp: torch.save({"step": 2}, tmp))
    monkeypatch.undo()
    assert torch.load(p, weights_only=True) == {"step": 1} and [f.name for f in tmp_path.iterdir()] == ["last.ckpt"]


def test_main_returns_the_exit_code_of_a_command_that_skipped_inputs(tmp_path, monkeypatch, capsys):
    """`sonokit data check` on a dataset with an unreadable image exits 1 (typer.Exit inside main)."""
    from sonokit.cli import main

    for i in range(3):
        img, m = blob(20, 24, seed=i)
        save(tmp_path / "ds" / "images" / f"s{i}.png", img)
        save(tmp_path / "ds" / "masks" / f"s{i}.png", m)
    (tmp_path / "ds" / "images" / "s1.png").write_bytes(b"not a png")
    monkeypatch.setattr("sys.argv", ["sonokit", "data", "check", str(tmp_path / "ds")])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 1 and "s1.png" in capsys.readouterr().out


def test_out_that_is_a_file_is_refused(tmp_path):
    from sonokit.cli.segment import start_batch  # segment and enhance both start with it
    from sonokit.errors import DataError

    (tmp_path / "result.txt").write_text("keep me")
    save(tmp_path / "in" / "a.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="is a file; expected a folder"):
        start_batch([tmp_path / "in"], tmp_path / "result.txt", None, fail_fast=False)
    assert (tmp_path / "result.txt").read_text() == "keep me"
