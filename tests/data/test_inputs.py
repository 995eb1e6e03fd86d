"""The input collector of `sonokit segment` / `sonokit enhance` (sonokit.data.inputs) and the batch runner:
names, masks left out, dataset layouts, files skipped before reading; broken links in `data check`."""
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from sonokit.data.batch import Batch
from sonokit.data.inputs import collect_inputs, read_input
from sonokit.errors import DataError

from ..conftest import blob, save
from .test_datasets import _dicom


def _img(path, h=20, w=24, seed=0):
    return save(path, blob(h, w, seed)[0])


def _names(plan):
    return [it.name for it in plan.items]


def test_clashing_stems_get_distinct_names_and_are_reported(tmp_path):
    _img(tmp_path / "x.png")
    _img(tmp_path / "x.jpg")
    _img(tmp_path / "y.png")
    _img(tmp_path / "a" / "z.png")
    _img(tmp_path / "b" / "z.png")
    plan = collect_inputs([tmp_path])
    assert _names(plan) == ["x_jpg", "x_png", "y", "a/z", "b/z"]
    notes = " ".join(plan.notes)
    assert "name clash: x.jpg, x.png -> x_jpg, x_png" in notes and "a/z.png, b/z.png -> a/z, b/z" in notes
    assert not plan.skipped
    assert [it.rel for it in plan.items] == ["x.jpg", "x.png", "y.png", "a/z.png", "b/z.png"]


def test_busi_class_folder_leaves_out_masks(tmp_path):
    d = tmp_path / "benign"
    for i in (1, 2, 10):
        _img(d / f"benign ({i}).png", seed=i)
        _img(d / f"benign ({i})_mask.png", seed=i)
    _img(d / "benign (1)_mask_1.png")
    _img(d / "lonely_mask.png")  # a mask-like name without its image is processed
    _img(tmp_path / "other" / "scan.png")
    _img(tmp_path / "other" / "scan_Annotation.png")
    plan = collect_inputs([d, tmp_path / "other"])
    assert _names(plan) == ["benign (1)", "benign (2)", "benign (10)", "lonely_mask", "scan"]
    assert "left out 5 ground-truth mask(s) (1 *_Annotation*, 4 *_mask*) beside their images" in plan.notes
    # an HC18 folder (NNN_HC.png + NNN_HC_Annotation.png) is read by its dataset reader: images only
    _img(tmp_path / "hc" / "001_HC.png")
    _img(tmp_path / "hc" / "001_HC_Annotation.png")
    assert _names(collect_inputs([tmp_path / "hc"])) == ["001_HC"]


def test_shell_glob_of_named_files_leaves_out_masks(tmp_path):
    files = [_img(tmp_path / n) for n in ("a.png", "a_mask.png", "b.png")]
    assert _names(collect_inputs(files)) == ["a", "b"]
    assert _names(collect_inputs([files[1]])) == ["a_mask"]  # named alone: processed


def test_dataset_layouts_yield_images_only(tmp_path, busi_tree):
    plan = collect_inputs([busi_tree / "Dataset_BUSI_with_GT"])
    assert len(plan.items) == 6 and not any("mask" in it.name for it in plan.items)
    assert "busi dataset: its 6 images only; left out its 7 ground-truth mask file(s)" in " ".join(plan.notes)
    root = tmp_path / "other" / "folder_ds"
    for n in ("p1", "p2"):
        _img(root / "images" / f"{n}.png")
        _img(root / "masks" / f"{n}.png")
    plan = collect_inputs([root])
    assert _names(plan) == ["p1", "p2"] and all(it.rel.startswith("images/") for it in plan.items)
    _img(root / "notes" / "sketch.png")  # not part of the layout: left out, and said so
    assert "left out 1 other image file(s) under" in " ".join(collect_inputs([root]).notes)
    # a dataset met while walking a parent folder is read the same way
    _img(tmp_path / "other" / "loose.png")
    assert _names(collect_inputs([tmp_path / "other"])) == ["loose", "p1", "p2"]


def test_skipped_before_reading_and_missing_paths(tmp_path):
    _img(tmp_path / "ok.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello")
    os.symlink(tmp_path / "gone.png", tmp_path / "link.png")
    plan = collect_inputs([tmp_path])
    assert _names(plan) == ["ok"]
    why = {p.name: m for p, m in plan.skipped}
    assert why["empty.dcm"].endswith("is an empty file; expected a DICOM file")
    assert "empty.png' is an empty file; expected a PNG" in why["empty.png"]
    assert why["link.png"].startswith("broken symbolic link (target") and "gone.png" in why["link.png"]
    assert "ignored 1 file(s) that are not images or DICOM (1 .txt)" in plan.notes
    plan = collect_inputs([tmp_path / "notes.txt", tmp_path / "link.png"])
    assert "not an image or DICOM file" in plan.skipped[0][1] and "broken symbolic link" in plan.skipped[1][1]
    with pytest.raises(DataError, match="input '.*nowhere.png' does not exist"):
        collect_inputs([tmp_path / "ok.png", tmp_path / "nowhere.png"])
    with pytest.raises(DataError, match="an input path is empty"):  # not the current folder, read whole
        collect_inputs([tmp_path / "ok.png", ""])


def test_output_folder_is_not_read_and_twice_named_file_once(tmp_path):
    _img(tmp_path / "a.png")
    _img(tmp_path / "out" / "a_overlay.png")
    plan = collect_inputs([tmp_path, tmp_path / "a.png"], exclude=[tmp_path / "out"])
    assert _names(plan) == ["a"] and any("named twice" in n for n in plan.notes)


def test_dicom_frames_and_read_input(tmp_path):
    frames = (np.random.default_rng(0).random((3, 10, 12)) * 255).astype(np.uint8)
    _dicom(tmp_path / "cine.dcm", frames, frames=3)
    _img(tmp_path / "cine_f1.png")  # would clash with frame 1's name
    plan = collect_inputs([tmp_path])
    assert _names(plan) == ["cine_f0", "cine_f1", "cine_f2", "cine_f1_2"]
    assert [it.frame for it in plan.items[:3]] == [0, 1, 2] and plan.items[0].base == "cine"
    inp = read_input(plan.items[2])
    np.testing.assert_allclose(inp.image, frames[2] / 255, atol=1e-6)
    assert inp.spacing == pytest.approx((0.2, 0.1))
    big = read_input(plan.items[3], lowmem_above=10)  # above the threshold: read as uint8
    assert big.image.dtype == np.uint8 and big.image.shape == (20, 24)


def test_zero_byte_dicom_says_empty_file(tmp_path):
    from sonokit.data.datasets import DicomReader

    (tmp_path / "scan.dcm").write_bytes(b"")
    with pytest.raises(DataError, match="scan.dcm' is an empty file; expected a DICOM file"):
        DicomReader(tmp_path / "scan.dcm")


def test_batch_counts_skips_and_fails_fast(tmp_path):
    lines = []
    b = Batch(report=lines.append)
    assert b.run(tmp_path / "a.png", lambda: 1) == 1
    assert b.run(tmp_path / "b.png", lambda: (_ for _ in ()).throw(DataError("corrupt"))) is None
    assert lines == [f"skipped: '{tmp_path / 'b.png'}': corrupt"]
    assert b.summary() == "done 1, skipped 1 (see above)" and b.failed
    with pytest.raises(DataError, match="corrupt.*--fail-fast"):
        Batch(fail_fast=True).skip(tmp_path / "c.png", "corrupt")


def test_data_check_reports_broken_symlink(tmp_path):
    from sonokit.cli import app

    root = tmp_path / "ds"
    for n in ("p1", "p2"):
        img, m = blob(24, 24, seed=len(n))
        save(root / "images" / f"{n}.png", img)
        save(root / "masks" / f"{n}.png", m)
    os.symlink(tmp_path / "elsewhere" / "p3.png", root / "images" / "p3.png")
    r = CliRunner().invoke(app, ["data", "check", str(root), "--json", str(tmp_path / "c.json")])
    out = "".join(r.output.split())  # rich wraps long lines
    assert r.exit_code == 1, r.output
    assert "p3.png:brokensymboliclink(target" in out and "elsewhere/p3.png'doesnotexist)" in out
    import json

    s = json.loads((tmp_path / "c.json").read_text())
    target = tmp_path / "elsewhere" / "p3.png"
    assert s["broken_links"] == 1
    assert {"file": str(root / "images" / "p3.png"),
            "problem": f"broken symbolic link (target '{target}' does not exist)"} in s["problems"]


@pytest.mark.parametrize("kind", ["gray", "colour", "16bit", "1bit", "palette"])
def test_lowmem_reader_matches_read_image(tmp_path, kind):
    from PIL import Image

    from sonokit.data.io import read_image, read_image_lowmem
    from sonokit.data.resample import unit_scale

    rng = np.random.default_rng(0)
    arr = {"gray": (rng.random((30, 40)) * 255).astype(np.uint8), "colour": (rng.random((30, 40, 3)) * 255).astype(np.uint8),
           "16bit": (rng.random((30, 40)) * 65535).astype(np.uint16), "1bit": rng.random((30, 40)) > 0.5,
           "palette": (rng.random((30, 40)) * 255).astype(np.uint8)}[kind]
    img = Image.fromarray(arr)
    (img.convert("P") if kind == "palette" else img).save(tmp_path / "a.png")
    ref, info = read_image(tmp_path / "a.png")
    low, low_info = read_image_lowmem(tmp_path / "a.png")
    assert low.dtype == (np.uint16 if kind == "16bit" else np.uint8)
    assert np.abs(low * unit_scale(low.dtype) - ref).max() <= 0.5 / 255 + 1e-6  # colour: luma rounded to uint8
    assert info.get("colour") == low_info.get("colour") and info.get("bit_depth") == low_info.get("bit_depth")
