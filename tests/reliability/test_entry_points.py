"""Every command and API entry point that reads a weights file refuses a crafted one before anything from it
runs, with a message that names the file and says why; ``--trust-checkpoint`` is the one way through.

Each case writes a hostile file (:mod:`tests.reliability.malicious`: unpickling it creates ``marker``), hands
it to the entry point, and checks: refused (an exception, a non-zero exit), the message names the file and
says that loading it would execute code, ``marker`` does not exist, and nothing was written.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import sonokit
from sonokit.cli import app, main
from sonokit.errors import CheckpointError, UnsafeCheckpointError

from ..cli.test_cli import TINY
from ..conftest import REPO, make_phantom, ok
from .malicious import Touch, make_hostile

runner = CliRunner()

#: a torch zip, a legacy (pre-1.6) .pt, a zip named .safetensors, a tampered best.ckpt shaped like sonokit's
KINDS = ("zip_ckpt", "legacy_pt", "ckpt_as_safetensors", "lightning_shaped")
#: the kinds that can stand in for a run's last.ckpt (a file of that name is never named .safetensors)
RESUME_KINDS = ("zip_ckpt", "legacy_pt", "lightning_shaped")
PRETRAIN_TINY = ["--set", "encoder.name=resnet10t", "--set", "data.image_size=48", "--set", "data.batch_size=8",
                 "--set", "trainer.progress=none", "--set", "method.num_negatives=8", "--set", "optim.epochs=1"]


def assert_refused(exc: BaseException | None, path: Path, marker: Path) -> str:
    """``exc`` is sonokit's refusal of ``path``: it names the file and says that loading it runs code."""
    assert isinstance(exc, UnsafeCheckpointError), repr(exc)
    msg = str(exc)
    assert str(path) in msg and "would execute code from the file" in msg, msg
    assert not marker.exists(), "the hostile file was unpickled"
    return msg


def cli(args: list) -> BaseException | None:
    """Run the command in-process; it must fail. Returns the exception it raised."""
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code != 0, r.output
    return r.exception


def api(fn, *args, **kw) -> BaseException:
    with pytest.raises(CheckpointError) as info:
        fn(*args, **kw)
    return info.value


def data_args(ph: Path) -> list[str]:
    return ["--set", f"data.root={ph / 'ph'}", "--set", f"data.split={ph / 'split.json'}"]


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return make_phantom(tmp_path_factory.mktemp("entry"))


@pytest.fixture(scope="module")
def run(phantom: Path) -> Path:
    """A real tiny segmentation run (1 epoch): checkpoints/best.ckpt and last.ckpt."""
    out = phantom / "run"
    ok(runner.invoke(app, ["train", "segment", "--out", str(out), *data_args(phantom), *TINY]))
    return out


@pytest.fixture(scope="module")
def pretrain_run(phantom: Path) -> Path:
    out = phantom / "pre"
    ok(runner.invoke(app, ["pretrain", "--out", str(out), *data_args(phantom), *PRETRAIN_TINY]))
    return out


def _onnx() -> None:
    pytest.importorskip("onnx", reason="ONNX export is the optional extra sonokit[onnx]")


def _images(ph: Path) -> Path:
    return ph / "ph" / "images"


# entry point -> call(path, tmp, phantom) returning the refusal; ``writes`` (relative to tmp) must not appear
CLI = {
    "evaluate": lambda p, t, ph: cli(["evaluate", "--checkpoint", p, "--out", t / "out"]),
    "segment": lambda p, t, ph: cli(["segment", _images(ph), "--checkpoint", p, "--out", t / "out"]),
    "enhance": lambda p, t, ph: cli(["enhance", _images(ph), "--checkpoint", p, "--out", t / "out"]),
    "export.safetensors": lambda p, t, ph: cli(["export", "--checkpoint", p, "--out", t / "out" / "m.safetensors"]),
    "export.onnx": lambda p, t, ph: _onnx() or cli(["export", "--checkpoint", p, "--out", t / "out" / "m.onnx"]),
    "train --encoder-checkpoint": lambda p, t, ph: cli(["train", "segment", "--out", t / "out", *data_args(ph), *TINY,
                                                        "--encoder-checkpoint", p]),
    "train model.encoder_checkpoint": lambda p, t, ph: cli(["train", "segment", "--out", t / "out", *data_args(ph),
                                                            *TINY, "--set", f"model.encoder_checkpoint={p}"]),
    "train init.checkpoint": lambda p, t, ph: cli(["train", "segment", "--out", t / "out", *data_args(ph), *TINY,
                                                   "--set", f"init.checkpoint={p}"]),
}


def _load_enhancer(p):
    from sonokit.enhance.inference import load_enhancer

    return load_enhancer(p)


def _export(p, t):
    from sonokit.export import export_model

    return export_model(p, t / "out" / "m.safetensors")


def _load_exported(p):
    from sonokit.export import load_safetensors_model

    return load_safetensors_model(p)


def _resunet(**weights):
    from sonokit.models import create_model

    return create_model("resunet_resnet10t", **weights)


def _vit_weights(p):
    from sonokit.models import create_encoder

    return create_encoder("vit_tiny_patch16", img_size=32, weights=str(p))


def _enhancer(p):
    from sonokit.enhance.models import create_enhancer

    return create_enhancer("dncnn_small", weights=p)


API = {
    "sonokit.evaluate": lambda p, t, ph: api(sonokit.evaluate, p, out=t / "out", log=None),
    "sonokit.predict": lambda p, t, ph: api(sonokit.predict, p, np.zeros((48, 48), np.float32)),
    "Segmenter.from_checkpoint": lambda p, t, ph: api(sonokit.Segmenter.from_checkpoint, p),
    "Classifier.from_checkpoint": lambda p, t, ph: api(sonokit.Classifier.from_checkpoint, p),
    "load_enhancer": lambda p, t, ph: api(_load_enhancer, p),
    "export_model": lambda p, t, ph: api(_export, p, t),
    "load_safetensors_model": lambda p, t, ph: api(_load_exported, p),
    "create_model(encoder_checkpoint=)": lambda p, t, ph: api(_resunet, encoder_checkpoint=str(p)),
    "create_model(encoder_weights=)": lambda p, t, ph: api(_resunet, encoder_weights=str(p)),
    "create_encoder(vit, weights=)": lambda p, t, ph: api(_vit_weights, p),
    "create_enhancer(weights=)": lambda p, t, ph: api(_enhancer, p),
}
ENTRIES = {**CLI, **API}
#: the entry points that read weights through a model factory, which never trusts a file
FACTORIES = {"train --encoder-checkpoint", "train model.encoder_checkpoint", "create_model(encoder_checkpoint=)",
             "create_model(encoder_weights=)", "create_encoder(vit, weights=)", "create_enhancer(weights=)",
             "load_safetensors_model"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_entry_point_refuses_a_hostile_file(phantom: Path, tmp_path: Path, entry: str, kind: str) -> None:
    path, marker = make_hostile(kind, tmp_path)
    exc = ENTRIES[entry](path, tmp_path, phantom)
    msg = assert_refused(exc, path, marker)
    if entry in FACTORIES:  # they take no trust flag: the message must not offer one
        assert "--trust-checkpoint does not apply" in msg or "not even with --trust-checkpoint" in msg, msg
        assert "load it anyway with --trust-checkpoint" not in msg and "load it with --trust-checkpoint" not in msg
    else:  # says what would load it, or that nothing would
        assert "--trust-checkpoint" in msg, msg
    out = tmp_path / "out"
    assert not out.exists() or entry.startswith("train"), sorted(out.rglob("*"))
    if entry.startswith("train"):  # refused while the model is built: no config, data record or checkpoint yet
        assert not (out / "config.yaml").exists() and not (out / "checkpoints").exists()


def _replace_last(run_dir: Path, kind: str, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of ``run_dir`` whose last.ckpt is the hostile file ``kind``: (copy, last.ckpt, marker)."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    path, marker = make_hostile(kind, tmp_path)
    last = copy / "checkpoints" / "last.ckpt"
    last.write_bytes(path.read_bytes())
    return copy, last, marker


def _unchanged(copy: Path, original: Path) -> None:
    for name in ("metrics.csv", "run.json", "config.yaml"):
        assert (copy / name).read_bytes() == (original / name).read_bytes(), name


@pytest.mark.parametrize("kind", RESUME_KINDS)
def test_train_resume_refuses_a_hostile_last_ckpt(run: Path, tmp_path: Path, kind: str) -> None:
    copy, last, marker = _replace_last(run, kind, tmp_path)
    assert_refused(cli(["train", "segment", "--out", copy, "--resume", "--epochs", "2"]), last, marker)
    _unchanged(copy, run)


@pytest.mark.parametrize("kind", RESUME_KINDS)
def test_pretrain_resume_refuses_a_hostile_last_ckpt(pretrain_run: Path, tmp_path: Path, kind: str) -> None:
    copy, last, marker = _replace_last(pretrain_run, kind, tmp_path)
    assert_refused(cli(["pretrain", "--out", copy, "--resume", "--epochs", "2"]), last, marker)
    _unchanged(copy, pretrain_run)


# ------------------------------------------------------------------------ the message on the command line

@pytest.mark.parametrize("argv", [
    ["evaluate", "--checkpoint", "{p}"],
    ["export", "--checkpoint", "{p}", "--out", "{t}/m.safetensors"],
    ["train", "segment", "--out", "{t}/r", "--encoder-checkpoint", "{p}", "--set", "data.root={ph}/ph",
     "--set", "data.split={ph}/split.json", *TINY],
], ids=["evaluate", "export", "train"])
def test_main_prints_one_error_line_and_exits_2(monkeypatch, capsys, phantom: Path, tmp_path: Path,
                                                argv: list[str]) -> None:
    path, marker = make_hostile("lightning_shaped", tmp_path)
    monkeypatch.setenv("COLUMNS", "100000")  # one line however long the path (rich wraps at the width)
    monkeypatch.setattr("sys.argv", ["sonokit", *(a.format(p=path, t=tmp_path, ph=phantom) for a in argv)])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: refusing to load checkpoint '{path}'") or \
        err.startswith(f"error: refusing to load weights file '{path}'"), err
    assert "would execute code from the file" in err and not marker.exists()


# ------------------------------------------------------------------------------------- what trust means

def _trojan(src: Path, dst: Path, marker: Path) -> Path:
    """A real checkpoint with a payload added: valid in every way, but unpickling it runs code."""
    from sonokit.serialization import load_checkpoint

    ck = load_checkpoint(src)
    ck["payload"] = Touch(marker)
    torch.save(ck, dst)
    return dst


def test_trust_checkpoint_lets_a_trusted_file_through(run: Path, tmp_path: Path) -> None:
    """export refuses a trojaned best.ckpt; with --trust-checkpoint it exports it, and the file's code runs."""
    marker = tmp_path / "PWNED"
    path = _trojan(run / "checkpoints" / "best.ckpt", tmp_path / "trojan.ckpt", marker)
    out = tmp_path / "m.safetensors"
    assert_refused(cli(["export", "--checkpoint", path, "--out", out]), path, marker)
    assert not out.exists()
    ok(runner.invoke(app, ["export", "--checkpoint", str(path), "--out", str(out), "--trust-checkpoint"]))
    assert out.exists() and marker.exists()  # trusted: unpickled in full, so the payload ran


def test_trust_reaches_resume_and_init_checkpoint(run: Path, phantom: Path, tmp_path: Path) -> None:
    """`train segment --trust-checkpoint` is threaded to --resume (sonokit's check and Lightning's own load)
    and to init.checkpoint."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    marker = tmp_path / "PWNED"
    last = copy / "checkpoints" / "last.ckpt"
    _trojan(run / "checkpoints" / "last.ckpt", last, marker)
    args = ["train", "segment", "--out", copy, "--resume", "--epochs", "2"]
    assert_refused(cli(args), last, marker)
    ok(runner.invoke(app, [str(a) for a in args] + ["--trust-checkpoint"]))
    assert marker.exists() and len((copy / "metrics.csv").read_text().splitlines()) == 3  # header + 2 epochs

    marker.unlink()
    init = _trojan(run / "checkpoints" / "best.ckpt", tmp_path / "init.ckpt", marker)
    args = ["train", "segment", "--out", tmp_path / "init_run", *data_args(phantom), *TINY,
            "--set", f"init.checkpoint={init}"]
    assert_refused(cli(args), init, marker)
    ok(runner.invoke(app, [str(a) for a in args] + ["--trust-checkpoint"]))
    assert marker.exists() and (tmp_path / "init_run" / "checkpoints" / "best.ckpt").exists()


def test_trust_does_not_reach_model_factories(tmp_path: Path) -> None:
    """Weights read by a model factory (encoder_checkpoint, encoder_weights) are never trusted: the CLI's
    --encoder-checkpoint help says so."""
    out = runner.invoke(app, ["train", "segment", "--help"], env={"COLUMNS": "400"}).output
    assert "--trust-checkpoint" in out and "does not apply to it" in " ".join(out.split())


# ------------------------------------------------------------------------------------------ one loader only

def test_no_reader_outside_the_serialization_package() -> None:
    """torch.load, safetensors' safe_open / load_file appear in src/ only inside sonokit.serialization."""
    pattern = re.compile(r"torch\.load\(|safe_open\(|\bload_file\(")
    src = REPO / "src" / "sonokit"
    found = [f"{p.relative_to(src)}:{i}" for p in src.rglob("*.py") if "serialization" not in p.relative_to(src).parts
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == [], found


def test_trust_help_needs_no_torch() -> None:
    code = ("import sys; from sonokit.cli.options import TRUST_HELP; from sonokit.errors import UnsafeCheckpointError;"
            " assert 'torch' not in sys.modules, 'torch imported'; print(TRUST_HELP)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    from sonokit.serialization import TRUST_HELP

    assert res.stdout.strip() == TRUST_HELP and TRUST_HELP.startswith("dangerous:")
