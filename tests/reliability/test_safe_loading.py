"""sonokit.serialization: hostile files are refused before anything from them runs; real checkpoints load."""
from __future__ import annotations

import logging
import pickle
import struct
from pathlib import Path

import pytest
import torch

from sonokit.errors import CheckpointError
from sonokit.serialization import SAFE_GLOBALS, TRUST_HELP, UnsafeCheckpointError, detect_format, load_checkpoint, load_weights

from .malicious import HOSTILE, TORCH_HOSTILE, detonate, make_hostile, real_state_dict

LOADERS = {"load_checkpoint": load_checkpoint, "load_weights": load_weights}


def _no_torch_traceback(e: BaseException) -> None:
    """The error is sonokit's own, not chained to an exception from inside torch/safetensors/pickletools."""
    assert e.__cause__ is None
    assert e.__context__ is None or e.__suppress_context__


# ------------------------------------------------------------------------------------------- hostile files

@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_files_are_live(tmp_path: Path, kind: str) -> None:
    """Control: loading each hostile file the old way (weights_only=False / pickle) fires its payload, so the
    refusal tests below are not vacuous."""
    path, marker = make_hostile(kind, tmp_path)
    detonate(path)
    assert marker.exists()


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_file_is_refused_and_nothing_runs(tmp_path: Path, monkeypatch, kind: str, loader: str) -> None:
    path, marker = make_hostile(kind, tmp_path)

    def no_torch_load(*a, **kw):  # the refusal must come from the static scan, before torch unpickles anything
        raise AssertionError("torch.load was called on a hostile file")

    monkeypatch.setattr(torch, "load", no_torch_load)
    with pytest.raises(UnsafeCheckpointError) as info:
        LOADERS[loader](path)
    msg = str(info.value)
    assert str(path) in msg
    assert "execute code" in msg and "never writes" in msg
    assert info.value.globals and info.value.path == path
    assert any("pathlib" in g or "getattr" in g for g in info.value.globals), info.value.globals
    assert all(g in msg for g in info.value.globals)
    _no_torch_traceback(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["zip_ckpt", "legacy_pt", "lightning_shaped"])
def test_refusal_tells_how_to_proceed(tmp_path: Path, kind: str) -> None:
    path, _ = make_hostile(kind, tmp_path)
    with pytest.raises(UnsafeCheckpointError, match=r"--trust-checkpoint.*trust=True.*dangerous"):
        load_checkpoint(path)


def test_trust_loads_a_hostile_zip_and_runs_its_code(tmp_path: Path, caplog) -> None:
    """What trust=True means: the file is unpickled in full, so its code runs (the marker appears)."""
    path, marker = make_hostile("zip_ckpt", tmp_path)
    with caplog.at_level(logging.WARNING, logger="sonokit.serialization"):
        ckpt = load_checkpoint(path, trust=True)
    assert marker.exists()
    assert torch.equal(ckpt["state_dict"]["model.conv.weight"], real_state_dict()["model.conv.weight"])
    assert any("trust" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)

    marker.unlink()
    sd, meta = load_weights(path, trust=True)
    assert marker.exists() and "state_dict" in sd and meta == {}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_trust_loads_every_real_torch_file(tmp_path: Path) -> None:
    for kind in TORCH_HOSTILE:
        path, marker = make_hostile(kind, tmp_path)
        assert "state_dict" in load_checkpoint(path, trust=True)
        assert marker.exists(), kind


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("kind", sorted(set(HOSTILE) - set(TORCH_HOSTILE)))
def test_trust_does_not_unpickle_disguised_or_foreign_pickles(tmp_path: Path, kind: str, loader: str) -> None:
    """A pickle named .safetensors, or a plain pickle (never a torch checkpoint), stays refused with trust."""
    path, marker = make_hostile(kind, tmp_path)
    with pytest.raises(UnsafeCheckpointError) as info:
        LOADERS[loader](path, trust=True)
    assert not marker.exists()
    if kind == "ckpt_as_safetensors":
        assert "not a safetensors file" in str(info.value) and "rename it to .pt" in str(info.value)


def test_globals_added_process_wide_do_not_widen_the_allow_list(tmp_path: Path) -> None:
    """Libraries may call torch.serialization.add_safe_globals (MONAI does, on import); sonokit's loader still
    allows only torch's defaults plus SAFE_GLOBALS."""
    path, marker = make_hostile("zip_ckpt", tmp_path)
    with torch.serialization.safe_globals([getattr, pathlib_path(), pathlib_posix()]):
        with pytest.raises(UnsafeCheckpointError):
            load_checkpoint(path)
    assert not marker.exists()


def pathlib_path():
    import pathlib

    return pathlib.Path


def pathlib_posix():
    import pathlib

    return pathlib.PosixPath


def test_trust_help_says_dangerous() -> None:
    assert TRUST_HELP.startswith("dangerous:")
    assert SAFE_GLOBALS == ()


# ------------------------------------------------------------------------------ real Lightning checkpoints

@pytest.fixture(scope="module")
def lightning_run(tmp_path_factory) -> Path:
    """A tiny Lightning training (AdamW + LambdaLR + ModelCheckpoint, 1 epoch on random tensors): the
    checkpoint folder holding best.ckpt and last.ckpt."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(L.LightningModule):
        def __init__(self, lr: float = 0.01, model_kwargs: dict | None = None, sizes: tuple = (4, 2)) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.BatchNorm1d(2), torch.nn.Linear(2, 1))

        def training_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self):
            opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    class RngState(L.Callback):
        """Persists RNG states the way sonokit's RunState callback does (torch ByteTensor; numpy/python as lists)."""

        @property
        def state_key(self) -> str:
            return "rng_state"

        def state_dict(self) -> dict:
            import random

            import numpy as np

            npst, pyst = np.random.get_state(), random.getstate()
            return {"history": [{"epoch": 0, "val_loss": 1.0}], "epochs_done": 1, "rng": {
                "torch": torch.get_rng_state(), "numpy": [npst[0], npst[1].tolist(), int(npst[2]), int(npst[3]),
                                                          float(npst[4])], "python": [pyst[0], list(pyst[1]), pyst[2]]}}

    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g))
    out = tmp_path_factory.mktemp("lightning") / "checkpoints"
    ckpt = ModelCheckpoint(dirpath=out, filename="best", monitor="val_loss", save_last=True,
                           enable_version_counter=False)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[ckpt, RngState()], default_root_dir=out.parent)
    trainer.fit(Tiny(model_kwargs={"in_chans": 1, "decoder": [8, 4]}),
                DataLoader(ds, batch_size=8), DataLoader(ds, batch_size=8))
    return out


@pytest.mark.parametrize("name", ["best.ckpt", "last.ckpt"])
def test_real_lightning_checkpoint_loads_without_trust(lightning_run: Path, name: str) -> None:
    path = lightning_run / name
    ckpt = load_checkpoint(path)
    for key in ("state_dict", "hyper_parameters", "optimizer_states", "lr_schedulers", "callbacks", "loops"):
        assert key in ckpt, key
    assert ckpt["hyper_parameters"]["model_kwargs"] == {"in_chans": 1, "decoder": [8, 4]}
    assert ckpt["state_dict"]["net.0.weight"].shape == (2, 4)
    assert ckpt["optimizer_states"][0]["param_groups"][0]["weight_decay"] == 1e-4
    assert ckpt["callbacks"]["rng_state"]["rng"]["torch"].dtype == torch.uint8
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []

    sd, meta = load_weights(path)  # a torch file: returned as is, callers unwrap
    assert meta == {} and set(sd) == set(ckpt)


def test_real_checkpoint_in_legacy_format_loads(lightning_run: Path, tmp_path: Path) -> None:
    ckpt = load_checkpoint(lightning_run / "last.ckpt")
    legacy = tmp_path / "legacy.pt"
    torch.save(ckpt, legacy, _use_new_zipfile_serialization=False)
    assert detect_format(legacy) == "torch-legacy"
    again = load_checkpoint(legacy)
    assert torch.equal(again["state_dict"]["net.0.weight"], ckpt["state_dict"]["net.0.weight"])


def test_a_state_dict_file_loads_as_weights(tmp_path: Path) -> None:
    path = tmp_path / "encoder.pth"
    torch.save({"encoder": real_state_dict()}, path)
    sd, meta = load_weights(path)
    assert meta == {} and torch.equal(sd["encoder"]["model.conv.weight"], real_state_dict()["model.conv.weight"])


# ---------------------------------------------------------------------------------------------- safetensors

def test_safetensors_round_trip_with_metadata(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    sd = real_state_dict()
    path = tmp_path / "encoder.safetensors"
    save_file(sd, str(path), metadata={"format": "sonokit-encoder", "encoder": "resnet18"})
    got, meta = load_weights(path)
    assert meta == {"format": "sonokit-encoder", "encoder": "resnet18"}
    assert set(got) == set(sd) and all(torch.equal(got[k], sd[k]) for k in sd)

    renamed = tmp_path / "encoder.pt"  # the container comes from the bytes, not the name
    renamed.write_bytes(path.read_bytes())
    assert detect_format(renamed) == "safetensors"
    got, meta = load_weights(renamed)
    assert meta["encoder"] == "resnet18" and torch.equal(got["model.conv.bias"], sd["model.conv.bias"])


def test_safetensors_is_not_a_checkpoint(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "best.ckpt"
    save_file(real_state_dict(), str(path))
    with pytest.raises(CheckpointError, match="safetensors weights file, not a training checkpoint") as info:
        load_checkpoint(path)
    assert not isinstance(info.value, UnsafeCheckpointError) and str(path) in str(info.value)


@pytest.mark.parametrize("case", ["header_too_long", "bad_json", "truncated_data", "tiny", "benign_pickle"])
def test_bad_safetensors_is_a_clear_error(tmp_path: Path, case: str) -> None:
    from safetensors.torch import save_file

    good = tmp_path / "good.safetensors"
    save_file(real_state_dict(), str(good))
    path = tmp_path / "bad.safetensors"
    if case == "header_too_long":
        path.write_bytes(struct.pack("<Q", 10_000) + b'{"a": 1}')
    elif case == "bad_json":
        path.write_bytes(struct.pack("<Q", 8) + b"{not js}")
    elif case == "truncated_data":
        path.write_bytes(good.read_bytes()[:-20])
    elif case == "tiny":
        path.write_bytes(b"\x01\x02\x03")
    else:
        torch.save(real_state_dict(), path)
    with pytest.raises(CheckpointError, match="not a safetensors file|not a valid safetensors file") as info:
        load_weights(path)
    assert str(path) in str(info.value) and not isinstance(info.value, UnsafeCheckpointError)
    _no_torch_traceback(info.value)


# ------------------------------------------------------------------------------------- broken files & paths

def _truncated_zip(d: Path) -> Path:
    full = d / "full.ckpt"
    torch.save({"state_dict": real_state_dict()}, full)
    cut = d / "cut.ckpt"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    return cut


def _truncated_legacy(d: Path) -> Path:
    full = d / "full.pt"
    torch.save({"state_dict": real_state_dict()}, full, _use_new_zipfile_serialization=False)
    cut = d / "cut.pt"
    cut.write_bytes(full.read_bytes()[:60])
    return cut


def _write(name: str, data: bytes | str):
    def make(d: Path) -> Path:
        p = d / name
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return p

    return make


def _tensor_file(d: Path) -> Path:
    torch.save(torch.zeros(3), d / "t.pt")
    return d / "t.pt"


BROKEN = {
    "truncated_zip": (_truncated_zip, "incomplete or corrupt"),
    "truncated_legacy": (_truncated_legacy, "incomplete or corrupt"),
    "empty": (_write("empty.ckpt", b""), "empty file"),
    "directory": (lambda d: d, "is a folder"),
    "missing": (lambda d: d / "nope.ckpt", "does not exist"),
    "lfs_pointer": (_write("lfs.ckpt", "version https://git-lfs.github.com/spec/v1\noid sha256:0\n"), "git lfs pull"),
    "garbage": (_write("junk.ckpt", "<html>404 not found</html>"), "match no known format"),
    "benign_pickle": (_write("p.pkl", pickle.dumps({"w": [1.0]})), "plain Python pickle"),
    "not_a_dict": (_tensor_file, "holds a Tensor"),
}


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_file_is_a_clear_checkpoint_error(tmp_path: Path, case: str, loader: str) -> None:
    make, expected = BROKEN[case]
    d = tmp_path / "files"
    d.mkdir()
    path = make(d)
    with pytest.raises(CheckpointError) as info:
        LOADERS[loader](path)
    assert not isinstance(info.value, UnsafeCheckpointError)
    msg = str(info.value)
    assert str(path) in msg and expected in msg, msg
    assert "expected" in msg.lower()
    _no_torch_traceback(info.value)


def test_a_run_folder_points_at_its_checkpoints(lightning_run: Path) -> None:
    with pytest.raises(CheckpointError, match=r"is a folder.*did you mean .*best\.ckpt"):
        load_checkpoint(lightning_run)


# ------------------------------------------------------------------------------- torch's gate, edge formats

def test_torch_weights_only_is_a_second_gate(tmp_path: Path, monkeypatch) -> None:
    """Without the static allow-list check (a torch whose private default list cannot be read), torch's own
    weights_only unpickler still refuses the hostile file, and nothing runs."""
    import sonokit.serialization.scan as scan

    monkeypatch.setattr(scan, "_allowed_globals", lambda: None)
    for kind in ("zip_ckpt", "legacy_pt", "nested_in_hparams"):
        path, marker = make_hostile(kind, tmp_path)
        with pytest.raises(UnsafeCheckpointError, match="torch's safe loader") as info:
            load_checkpoint(path)
        assert str(path) in str(info.value) and info.value.globals
        _no_torch_traceback(info.value)
        assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_benign_protocol4_file_is_not_called_unsafe(tmp_path: Path) -> None:
    """torch's weights_only reader cannot parse pickle protocol 4 framing: a clear CheckpointError that says
    so (not an UnsafeCheckpointError); trust=True reads it."""
    path = tmp_path / "p4.pt"
    torch.save(real_state_dict(), path, pickle_protocol=4)
    with pytest.raises(CheckpointError, match="protocol") as info:
        load_weights(path)
    assert not isinstance(info.value, UnsafeCheckpointError)
    sd, _ = load_weights(path, trust=True)
    assert torch.equal(sd["model.conv.weight"], real_state_dict()["model.conv.weight"])


def test_unsafe_error_survives_pickling(tmp_path: Path) -> None:
    path, _ = make_hostile("zip_ckpt", tmp_path)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(path)
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value) and again.globals == info.value.globals and again.path == path
