"""`sonokit enhance --backend onnx`: the network's graph (dynamic height and width, padding done outside) gives
the torch model's output on odd sizes, whole and tiled; cached beside the checkpoint; the CLI uses it."""
import numpy as np
import pytest
from typer.testing import CliRunner

from sonokit.cli import app
from sonokit.enhance import enhance_image, load_enhancer

from ..conftest import make_phantom, ok, save
from ..tasks.test_enhance import TINY

pytest.importorskip("onnxruntime", reason="the ONNX backend is the optional extra sonokit[onnx]")
runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = make_phantom(tmp_path_factory.mktemp("enh_onnx"), size=64)
    ok(runner.invoke(app, ["train", "enhance", "--out", str(d / "enh"), "--set", f"data.root={d / 'ph'}",
                           "--set", f"data.split={d / 'split.json'}", *TINY]))
    return d / "enh" / "checkpoints" / "last.ckpt"


def test_onnx_enhancer_matches_torch_whole_and_tiled(ckpt):
    net, hp = load_enhancer(ckpt)
    onet, hp2 = load_enhancer(ckpt, backend="onnx", threads=1)
    assert hp2 == hp and ckpt.with_name(ckpt.name + ".onnx").exists()
    rng = np.random.default_rng(0)
    for shape, tile in [((37, 53), 256), ((150, 97), 64)]:  # whole (padded), and tiled with overlap
        x = rng.random(shape).astype(np.float32)
        a = enhance_image(net, x, tile=tile, overlap=16)
        b = enhance_image(onet, x, tile=tile, overlap=16)
        assert a.shape == b.shape == shape and np.abs(a - b).max() < 1e-4


def test_cli_enhance_with_onnx(ckpt, tmp_path):
    img = save(tmp_path / "scan.png", (np.random.default_rng(1).random((50, 70)) * 255).astype(np.uint8))
    for backend in ("onnx", "torch"):
        ok(runner.invoke(app, ["enhance", str(img), "--checkpoint", str(ckpt), "--out", str(tmp_path / backend),
                               "--backend", backend, "--threads", "1"]))
    from PIL import Image

    a = np.asarray(Image.open(tmp_path / "onnx" / "scan_enhanced.png"), dtype=int)
    b = np.asarray(Image.open(tmp_path / "torch" / "scan_enhanced.png"), dtype=int)
    assert a.shape == b.shape and np.abs(a - b).max() <= 1  # 8-bit rounding at most
    r = runner.invoke(app, ["enhance", str(img), "--checkpoint", str(ckpt), "--out", str(tmp_path / "x"),
                            "--backend", "tensorrt"])
    assert r.exit_code != 0 and "torch, onnx, auto" in str(r.exception)
