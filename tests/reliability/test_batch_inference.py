"""Batch inference that survives real folders: `sonokit segment` and `sonokit enhance` on clashing names, corrupt
and empty files, BUSI class folders and dataset roots (masks are never segmented), and large images (row-chunked
path, checked against whole-image resampling)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from sonokit.cli import app
from sonokit.data.resample import area_resize, bilinear_resize
from sonokit.errors import DataError

from ..cli.test_cli import TINY
from ..conftest import blob, make_phantom, ok, save
from ..tasks.test_enhance import TINY as ENHANCE_TINY

runner = CliRunner()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny segmentation run and a tiny enhancement run on one phantom: their checkpoints."""
    d = make_phantom(tmp_path_factory.mktemp("batch"), size=64)  # enhancement crops need >= 64 px frames
    data = ["--set", f"data.root={d / 'ph'}", "--set", f"data.split={d / 'split.json'}"]
    ok(runner.invoke(app, ["train", "segment", "--out", str(d / "seg"), *data, *TINY]))
    ok(runner.invoke(app, ["train", "enhance", "--out", str(d / "enh"), *data, *ENHANCE_TINY]))
    return {"segment": d / "seg" / "checkpoints" / "last.ckpt", "enhance": d / "enh" / "checkpoints" / "last.ckpt"}


def _segment(models, *args):
    return runner.invoke(app, ["segment", *map(str, args), "--checkpoint", str(models["segment"])])


def _enhance(models, *args):
    return runner.invoke(app, ["enhance", *map(str, args), "--checkpoint", str(models["enhance"]), "--tile", "32",
                               "--overlap", "16"])


def _text(r) -> str:
    return " ".join(r.output.split())  # rich wraps long lines


def test_clashing_stems_are_all_written_under_distinct_names(models, tmp_path):
    for name, seed in (("x.png", 0), ("x.jpg", 1), ("y.png", 2)):
        save(tmp_path / "in" / name, blob(40, 52, seed)[0])
    r = _segment(models, tmp_path / "in", "--out", tmp_path / "seg")
    out = _text(ok(r) and r)
    assert "name clash: x.jpg, x.png -> x_jpg, x_png" in out and "done 3, skipped 0" in out
    assert sorted(p.name for p in (tmp_path / "seg").glob("*_mask.png")) == ["x_jpg_mask.png", "x_png_mask.png", "y_mask.png"]
    ok(_enhance(models, tmp_path / "in", "--out", tmp_path / "enh"))
    assert sorted(p.name for p in (tmp_path / "enh").iterdir()) == ["x_jpg_enhanced.png", "x_png_enhanced.png",
                                                                    "y_enhanced.png"]


def test_corrupt_file_is_named_and_skipped_the_rest_written(models, tmp_path):
    save(tmp_path / "in" / "a.png", blob(40, 52, 0)[0])
    (tmp_path / "in" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    save(tmp_path / "in" / "c.png", blob(30, 30, 1)[0])
    nan = np.zeros((20, 20), np.float32)
    nan[2, 3] = np.nan
    Image.fromarray(nan, mode="F").save(tmp_path / "in" / "d.tif")
    r = _segment(models, tmp_path / "in", "--out", tmp_path / "seg")
    out = _text(r)
    assert r.exit_code == 1, out
    assert f"skipped: cannot read image '{tmp_path / 'in' / 'b.png'}'" in out and "d.tif' holds NaN or Inf pixels" in out
    assert out.endswith(f"done 2, skipped 2 (see above); masks and overlays in {tmp_path / 'seg'}")
    assert (tmp_path / "seg" / "a_mask.png").exists() and (tmp_path / "seg" / "c_overlay.png").exists()
    r = _segment(models, tmp_path / "in", "--out", tmp_path / "ff", "--fail-fast")
    assert isinstance(r.exception, DataError) and "b.png" in str(r.exception)
    assert (tmp_path / "ff" / "a_mask.png").exists() and not (tmp_path / "ff" / "c_mask.png").exists()
    r = _enhance(models, tmp_path / "in", "--out", tmp_path / "enh")
    assert r.exit_code == 1 and "done 2, skipped 2 (see above)" in _text(r)


def test_busi_class_folder_segments_images_not_masks(models, tmp_path):
    d = tmp_path / "benign"
    for i in (1, 2, 3):
        img, m = blob(40, 48, seed=i)
        save(d / f"benign ({i}).png", img)
        save(d / f"benign ({i})_mask.png", m)
    save(d / "benign (2)_mask_1.png", blob(40, 48, 9)[1])
    r = _segment(models, d, "--out", tmp_path / "seg")
    out = _text(ok(r) and r)
    assert "left out 4 ground-truth mask(s) (4 *_mask*) beside their images" in out and "done 3, skipped 0" in out
    written = sorted(p.name for p in (tmp_path / "seg").glob("*_mask.png"))
    assert written == ["benign (1)_mask.png", "benign (2)_mask.png", "benign (3)_mask.png"]


def test_folder_dataset_root_segments_only_its_images(models, tmp_path):
    root = tmp_path / "ds"
    for n in ("p1", "p2"):
        img, m = blob(36, 44, seed=len(n))
        save(root / "images" / f"{n}.png", img)
        save(root / "masks" / f"{n}.png", m)
    r = _segment(models, root, "--out", tmp_path / "seg")
    assert "folder dataset: its 2 images only; left out its 2 ground-truth mask file(s)" in _text(ok(r) and r)
    assert sorted(p.name for p in (tmp_path / "seg").iterdir()) == ["p1_mask.png", "p1_overlay.png", "p2_mask.png",
                                                                    "p2_overlay.png", "segmentation.csv"]


def test_zero_byte_dicom_is_an_empty_file(models, tmp_path):
    save(tmp_path / "in" / "ok.png", blob(30, 30)[0])
    (tmp_path / "in" / "scan.dcm").write_bytes(b"")
    for target in (tmp_path / "in", tmp_path / "in" / "scan.dcm"):
        r = _segment(models, target, "--out", tmp_path / "seg")
        assert r.exit_code == 1 and "scan.dcm' is an empty file; expected a DICOM file" in _text(r)
    r = _enhance(models, tmp_path / "in" / "scan.dcm", "--out", tmp_path / "enh", "--fail-fast")
    assert isinstance(r.exception, DataError) and "is an empty file; expected a DICOM file" in str(r.exception)


def test_chunked_resampling_equals_whole_image_resampling():
    rng = np.random.default_rng(0)
    small = (rng.standard_normal((37, 53)) * 4).astype(np.float32)  # logits
    whole = F.interpolate(torch.from_numpy(small)[None, None], size=(1001, 1517), mode="bilinear",
                          align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(bilinear_resize(small, 1001, 1517, rows=64), whole, atol=1e-4)
    image = (rng.random((1001, 1517)) * 255).astype(np.uint8)
    area = F.interpolate(torch.from_numpy(image.astype(np.float32) / 255)[None, None], size=(61, 83),
                         mode="area")[0, 0].numpy()
    np.testing.assert_allclose(area_resize(image, 61, 83, rows=50), area, atol=1e-5)


def test_large_path_equals_whole_image_upsampling_of_its_logits(models):
    from sonokit.inference import Segmenter

    seg = Segmenter.from_checkpoint(models["segment"], large_pixels=100_000)
    image = blob(400, 600, seed=3)[0]  # uint8, 240 k pixels: the large path
    res = seg.segment(image, rows=37)
    assert res.large and res.mask.shape == res.prob.shape == (400, 600) and res.prob.dtype == np.uint8
    logits = torch.from_numpy(seg.small_logits(image))[None, None]
    prob = torch.sigmoid(F.interpolate(logits, size=(400, 600), mode="bilinear", align_corners=False))[0, 0].numpy()
    assert np.abs(res.prob.astype(int) - np.round(prob * 255).astype(int)).max() <= 1
    assert (res.mask != (prob >= 0.5)).mean() < 1e-4  # only pixels within float rounding of the threshold
    np.testing.assert_allclose(seg.predict(image), prob, atol=1e-5)  # predict takes the same path
    # the plain path on the same image predicts nearly the same (area vs antialiased bilinear reduction)
    plain = Segmenter.from_checkpoint(models["segment"]).predict(image.astype(np.float32) / 255)
    assert np.abs(plain - prob).mean() < 0.02


def test_large_image_through_the_cli_writes_a_full_size_mask(models, tmp_path, monkeypatch):
    import sonokit.inference.lite as lite
    import sonokit.inference.segmenter as segmenter

    monkeypatch.setattr(segmenter, "LARGE_PIXELS", 4_000_000)  # a 3000 x 2000 image counts as large
    monkeypatch.setattr(lite, "LARGE_PIXELS", 4_000_000)  # also for the ONNX path once its graph is cached
    img = np.tile(blob(200, 300, seed=4)[0], (10, 10))  # (2000, 3000) uint8
    save(tmp_path / "in" / "big.png", img)
    r = _segment(models, tmp_path / "in" / "big.png", "--out", tmp_path / "seg", "--save-prob")
    out = _text(ok(r) and r)
    assert "big: 3000x2000 px (large image: reduced in row chunks for the model; overlay written at 2048x1365 px)" in out
    mask = np.asarray(Image.open(tmp_path / "seg" / "big_mask.png"))
    prob = np.asarray(Image.open(tmp_path / "seg" / "big_prob.png"))
    assert mask.shape == prob.shape == (2000, 3000) and set(np.unique(mask)) <= {0, 255}
    assert ((prob >= 128) != (mask > 0)).mean() < 1e-3
    assert Image.open(tmp_path / "seg" / "big_overlay.png").size == (2048, 1365)


def test_both_commands_take_trust_checkpoint():
    for cmd in ("segment", "enhance"):
        assert "--trust-checkpoint" in ok(runner.invoke(app, [cmd, "--help"]))
