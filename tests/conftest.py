from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# the public datasets: $SONOKIT_DATA when set, else ../shared/data beside the checkout
SHARED_DATA = Path(os.environ.get("SONOKIT_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
REPO = Path(__file__).resolve().parents[1]


def ok(result):
    """Assert that a typer CliRunner result exited 0 (showing its output and exception otherwise)."""
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def make_phantom(d: Path, *, n: int = 24, size: int = 48) -> Path:
    """Simulate a tiny phantom at ``d/ph`` and its split at ``d/split.json`` through the CLI; returns ``d``."""
    from typer.testing import CliRunner

    from sonokit.cli import app

    runner = CliRunner()
    ok(runner.invoke(app, ["simulate", "phantom", "--out", str(d / "ph"), "--n", str(n), "--size", str(size)]))
    ok(runner.invoke(app, ["data", "split", str(d / "ph"), "--out", str(d / "split.json"), "--seeds", "0"]))
    return d


def save(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


def blob(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A gray uint8 image with a dark disc and its {0,255} mask."""
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w)) * 120 + 100).astype(np.uint8)
    yy, xx = np.mgrid[:h, :w]
    m = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 4) ** 2
    img[m] //= 3
    return img, (m * 255).astype(np.uint8)


@pytest.fixture
def busi_tree(tmp_path: Path) -> Path:
    root = tmp_path / "Dataset_BUSI_with_GT"
    for cls, n in (("benign", 3), ("malignant", 2), ("normal", 1)):
        for i in range(1, n + 1):
            img, m = blob(40, 48, seed=hash((cls, i)) % 1000)
            if cls == "normal":
                m[:] = 0
            save(root / cls / f"{cls} ({i}).png", img)
            save(root / cls / f"{cls} ({i})_mask.png", m)
    # a multi-lesion case: union of two masks
    m2 = np.zeros((40, 48), np.uint8)
    m2[2:6, 2:6] = 255
    save(root / "benign" / "benign (1)_mask_1.png", m2)
    return tmp_path


def _real(name: str) -> Path:
    p = SHARED_DATA / name
    if not p.exists():
        pytest.skip(f"real {name} data not found at {p} (set SONOKIT_DATA to the folder holding busi/, hc18/, "
                    "ddti/; see ../shared/data/README.md)")
    return p


@pytest.fixture
def real_busi() -> Path:
    return _real("busi")


@pytest.fixture
def real_hc18() -> Path:
    return _real("hc18")


@pytest.fixture
def real_ddti() -> Path:
    return _real("ddti")


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Shipped models' ONNX graphs go to a cache of the test session, never the user's ~/.cache/sonokit."""
    old = os.environ.get("SONOKIT_CACHE")
    os.environ["SONOKIT_CACHE"] = str(tmp_path_factory.mktemp("sonokit-cache"))
    yield
    if old is None:
        os.environ.pop("SONOKIT_CACHE", None)
    else:
        os.environ["SONOKIT_CACHE"] = old
