"""The ONNX Runtime backend: exported once beside the checkpoint, checked against torch, reused, redone when the
checkpoint changes; masks equal to torch's; options it cannot serve are clear errors; the thread default."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from sonokit.cli import app
from sonokit.errors import ConfigError
from sonokit.inference import Segmenter
from sonokit.inference.backend import default_threads, set_threads

from ..conftest import make_phantom, ok

pytest.importorskip("onnxruntime", reason="the ONNX backend is the optional extra sonokit[onnx]")
runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = make_phantom(tmp_path_factory.mktemp("onnx"), n=12, size=48)
    ok(runner.invoke(app, ["train", "segment", "--out", str(d / "run"), "--set", f"data.root={d / 'ph'}",
                           "--set", f"data.split={d / 'split.json'}", "--set", "model.name=resunet_resnet10t",
                           "--set", "model.decoder_channels=[8, 8, 8, 8, 8]", "--set", "data.image_size=48",
                           "--set", "optim.epochs=1", "--set", "trainer.progress=none"]))
    return d, d / "run" / "checkpoints" / "best.ckpt"


def test_onnx_matches_torch_and_is_cached(trained):
    d, ck = trained
    ims = [np.random.default_rng(i).random((40 + 9 * i, 61)).astype(np.float32) for i in range(3)]
    torch_seg = Segmenter.from_checkpoint(ck)
    logs: list[str] = []
    onnx_seg = Segmenter.from_checkpoint(ck, backend="onnx", threads=1, log=logs.append)
    a, b = torch_seg.predict_batch(ims), onnx_seg.predict_batch(ims)
    assert all(x.shape == y.shape and np.abs(x - y).max() < 1e-4 for x, y in zip(a, b))
    graph, side = ck.with_name("best.ckpt.onnx"), ck.with_name("best.ckpt.onnx.json")
    meta = json.loads(side.read_text())
    assert graph.exists() and meta["ok"] and meta["max_abs_diff"] < 1e-3 and any("checked against torch" in m for m in logs)
    stamp = graph.stat().st_mtime_ns
    Segmenter.from_checkpoint(ck, backend="onnx", threads=1)  # reused: not exported again
    assert graph.stat().st_mtime_ns == stamp
    os.utime(ck)  # same bytes, new time: the digest still matches, no export
    Segmenter.from_checkpoint(ck, backend="onnx", threads=1)
    assert graph.stat().st_mtime_ns == stamp


def test_cli_backend_and_its_refusals(trained, tmp_path):
    d, ck = trained
    img = d / "ph" / "images" / "phantom_0000.png"
    out = ok(runner.invoke(app, ["segment", str(img), "--checkpoint", str(ck), "--out", str(tmp_path / "o"),
                                 "--backend", "onnx", "--threads", "1"]))
    assert (tmp_path / "o" / "phantom_0000_mask.png").exists() and "phantom_0000" in out
    for extra, match in [(["--save-uncertainty"], "the mask only"), (["--organ", "breast"], "no organ input")]:
        r = runner.invoke(app, ["segment", str(img), "--checkpoint", str(ck), "--out", str(tmp_path / "x"),
                                "--backend", "onnx", *extra])
        assert r.exit_code != 0 and r.exception is not None
        import re

        assert re.search(match, str(r.exception)), str(r.exception)
    with pytest.raises(ConfigError, match="--backend must be one of torch, onnx"):
        Segmenter.from_checkpoint(ck, backend="tensorrt")


def test_thread_default_is_sane():
    n = default_threads()
    assert 1 <= n <= (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    import torch

    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(ConfigError, match="at least 1"):
            set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_a_cached_graph_segments_without_importing_torch(trained, tmp_path):
    import subprocess
    import sys

    d, ck = trained
    Segmenter.from_checkpoint(ck, backend="onnx", threads=1)  # the graph exists (made with torch)
    img = d / "ph" / "images" / "phantom_0003.png"
    code = ("import sys; from sonokit.cli import main; sys.argv = ['sonokit', 'segment', sys.argv[1], '--checkpoint', "
            "sys.argv[2], '--out', sys.argv[3], '--backend', 'onnx', '--threads', '1']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\nprint('no torch')")
    r = subprocess.run([sys.executable, "-c", code, str(img), str(ck), str(tmp_path / "lite")], capture_output=True,
                       text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0 and "no torch" in r.stdout, r.stdout + r.stderr
    ok(runner.invoke(app, ["segment", str(img), "--checkpoint", str(ck), "--out", str(tmp_path / "eager"),
                           "--backend", "torch"]))
    from PIL import Image

    a = np.asarray(Image.open(tmp_path / "lite" / "phantom_0003_mask.png")) > 0
    b = np.asarray(Image.open(tmp_path / "eager" / "phantom_0003_mask.png")) > 0
    assert a.shape == b.shape and (a != b).mean() < 0.002  # resampling round-off at the boundary at most
