"""Checkpoints that always resume: a training process killed with SIGKILL mid-epoch loses at most one epoch
(none with step checkpoints), and the resumed run ends with the same epochs, an intact metrics.csv and the
same model as an uninterrupted run with the same seed."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sonokit.serialization import load_checkpoint

from ..conftest import make_phantom

EPOCHS = 4
ARGS = ["--set", "model.name=resunet_resnet10t", "--set", "model.decoder_channels=[8,8,8,8,8]",
        "--set", "data.image_size=48", "--set", "data.batch_size=2", "--set", "trainer.progress=lines",
        "--set", "trainer.num_threads=1", "--set", f"optim.epochs={EPOCHS}"]


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(tmp_path_factory.mktemp("resume"), n=24, size=48)


def _cmd(phantom: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from sonokit.cli import main; main()", "train", "segment", "--out", str(out),
            "--set", f"data.root={phantom / 'ph'}", "--set", f"data.split={phantom / 'split.json'}", *ARGS, *extra]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _weights(run: Path) -> dict:
    return load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]


def _epochs_done(run: Path) -> int:
    return load_checkpoint(run / "checkpoints" / "last.ckpt")["callbacks"]["sonokit_run_state"]["epochs_done"]


@pytest.fixture(scope="module")
def uninterrupted(phantom):
    out = phantom / "a"
    subprocess.run(_cmd(phantom, out), check=True, env=_env(), capture_output=True, timeout=600)
    return out


def _kill_mid_epoch(phantom: Path, out: Path, *extra: str) -> int:
    """Start a run, wait until its first epoch is done, kill it (SIGKILL) halfway through the second."""
    p = subprocess.Popen(_cmd(phantom, out, *extra), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not ((out / "metrics.csv").exists() and len(_rows(out)) >= 1):
            time.sleep(0.05)
        assert p.poll() is None, "the run ended before it could be killed"
        time.sleep(0.5 * float(_rows(out)[0]["seconds"]))
        done = len(_rows(out))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert done < EPOCHS, "the kill came too late to test anything"
    return done


def _resume(phantom: Path, out: Path) -> None:
    r = subprocess.run([sys.executable, "-c", "from sonokit.cli import main; main()", "train", "segment", "--out",
                        str(out), "--resume"], env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(phantom, uninterrupted):
    out = phantom / "b"
    done_at_kill = _kill_mid_epoch(phantom, out)
    assert _epochs_done(out) >= done_at_kill - 1  # at most one epoch lost
    _resume(phantom, out)
    assert not list((out / "checkpoints").glob(".*.tmp"))  # orphans are cleaned at start
    assert _epochs_done(out) == _epochs_done(uninterrupted) == EPOCHS
    a, b = _rows(uninterrupted), _rows(out)
    assert [r["epoch"] for r in b] == [str(e) for e in range(EPOCHS)]  # every epoch exactly once
    for ra, rb in zip(a, b):
        for k in ("step", "train_loss", "val_loss", "val_dice"):
            assert float(ra[k]) == pytest.approx(float(rb[k]), rel=1e-5, abs=1e-6), (k, ra, rb)
    wa, wb = _weights(uninterrupted), _weights(out)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), atol=1e-5), k


def test_step_checkpoints_resume_inside_the_epoch(phantom, uninterrupted):
    out = phantom / "c"
    _kill_mid_epoch(phantom, out, "--set", "trainer.checkpoint_every_n_steps=1")
    ck = load_checkpoint(out / "checkpoints" / "last.ckpt")
    steps_per_epoch = int(_rows(uninterrupted)[0]["step"])
    assert ck["global_step"] % steps_per_epoch != 0 or ck["global_step"] > steps_per_epoch  # a mid-epoch point
    _resume(phantom, out)
    wa, wc = _weights(uninterrupted), _weights(out)
    for k in wa:
        assert torch.allclose(wa[k].float(), wc[k].float(), atol=1e-5), k
    assert [r["epoch"] for r in _rows(out)] == [str(e) for e in range(EPOCHS)]
