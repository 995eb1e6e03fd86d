"""Enhancement training and inference end to end on a tiny phantom (dncnn_small, 32-px patches, CPU)."""
import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sonokit.cli import app
from sonokit.data.pairs import EnhanceTargets, TargetCropDataset
from sonokit.enhance import create_enhancer, enhance_image, load_enhancer
from sonokit.errors import ConfigError, DataError
from sonokit.tasks.enhance import build_degradations, charbonnier_loss, degrade_margin, enhancement_loss

from ..conftest import save

runner = CliRunner()

TINY = ["--set", "model.name=dncnn_small", "--set", "data.patch_size=32", "--set", "data.batch_size=4",
        "--set", "data.patches_per_epoch=8", "--set", "optim.epochs=1", "--set", "trainer.progress=none",
        "--set", "target.kind=nllr", "--set", "target.search=6", "--set", "target.k=8"]


def ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    from sonokit.data import open_dataset
    from sonokit.data.splits import make_split, save_split
    from sonokit.physics import simulate_phantom

    d = tmp_path_factory.mktemp("enh")
    simulate_phantom(d / "ph", n=8, size=64)
    r = open_dataset(d / "ph")
    split = make_split(r.ids, labels={x.id: x.label for x in r.records}, val=0.25, test=0.25, seeds=(0,),
                       fractions=(1.0,), dataset=r.name)
    save_split(split, d / "split.json")
    return d


def _args(phantom, run):
    return ["train", "enhance", "--out", str(run), "--set", f"data.root={phantom / 'ph'}",
            "--set", f"data.split={phantom / 'split.json'}", *TINY]


@pytest.fixture(scope="module")
def trained(phantom):
    run = phantom / "run"
    ok(runner.invoke(app, _args(phantom, run)))
    return run


def test_train_writes_run_folder(trained):
    assert (trained / "checkpoints" / "best.ckpt").exists() and (trained / "checkpoints" / "last.ckpt").exists()
    assert (trained / "config.yaml").exists()
    info = json.loads((trained / "data.json").read_text())
    assert info["train"] == 4 and info["val"] == 2 and info["target"] == "nllr" and info["targets_computed"] == 6
    rows = list(csv.DictReader(open(trained / "metrics.csv")))
    vals = [float(r["val_psnr"]) for r in rows if r.get("val_psnr")]
    assert vals and all(np.isfinite(vals))
    assert any(r.get("val_ssim") for r in rows) and any(r.get("val_psnr_input") for r in rows)
    hp = torch.load(trained / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["hyper_parameters"]
    assert hp["model"] == "dncnn_small" and hp["image"]["target"] == "nllr" and hp["degrade"]["blur"] is not None


def test_existing_run_refused_and_resume_reuses_target_cache(trained, phantom):
    cache = sorted((trained / "targets").rglob("*.npy"))
    assert len(cache) == 6
    mtimes = [p.stat().st_mtime_ns for p in cache]
    r = runner.invoke(app, _args(phantom, trained))
    assert r.exit_code != 0 and isinstance(r.exception, ConfigError) and "--resume" in str(r.exception)
    ok(runner.invoke(app, [*_args(phantom, trained), "--resume", "--set", "optim.epochs=2"]))
    assert [p.stat().st_mtime_ns for p in cache] == mtimes  # NLLR targets loaded, not recomputed
    info = json.loads((trained / "data.json").read_text())
    assert info["targets_computed"] == 0 and info["targets_loaded"] == 6
    ck = torch.load(trained / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ck["epoch"] == 1 and ck["global_step"] == 4  # 2 epochs x 2 steps
    rows = list(csv.DictReader(open(trained / "metrics.csv")))
    assert {int(r["epoch"]) for r in rows if r.get("val_psnr")} == {0, 1}


def test_enhance_cli_png_odd_size_and_dicom(trained, tmp_path):
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(0)
    save(tmp_path / "in" / "odd.png", (rng.random((70, 90)) * 255).astype(np.uint8))
    rgb = (rng.random((33, 41, 3)) * 255).astype(np.uint8)
    save(tmp_path / "in" / "colour.png", rgb)  # RGB: converted to luma (documented), output gray
    deep = (rng.random((30, 36)) * 65535).astype(np.uint16)
    save(tmp_path / "in" / "deep.png", deep)  # 16-bit: scaled by 1/65535 to [0, 1] (documented), output 8-bit
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(tmp_path / "in" / "us.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Modality, ds.PatientID, ds.SOPInstanceUID = "US", "P1", meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = 40, 52
    ds.PhotometricInterpretation, ds.SamplesPerPixel = "MONOCHROME2", 1
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = (rng.random((40, 52)) * 255).astype(np.uint8).tobytes()
    ds.save_as(tmp_path / "in" / "us.dcm", enforce_file_format=True)
    out = tmp_path / "out"
    r = runner.invoke(app, ["enhance", str(tmp_path / "in"), "--checkpoint", str(trained / "checkpoints" / "best.ckpt"),
                            "--out", str(out), "--tile", "32", "--overlap", "24"])
    ok(r)
    assert np.asarray(Image.open(out / "odd_enhanced.png")).shape == (70, 90)
    assert np.asarray(Image.open(out / "colour_enhanced.png")).shape == (33, 41)
    d16 = np.asarray(Image.open(out / "deep_enhanced.png"))
    assert d16.shape == (30, 36) and d16.dtype == np.uint8
    assert "converted: RGB to gray" in r.output and "converted: 16-bit to [0, 1]" in r.output
    assert np.asarray(Image.open(out / "us_enhanced.png")).shape == (40, 52)
    d = pydicom.dcmread(out / "us_enhanced.dcm")
    assert d.pixel_array.shape == (40, 52) and d.pixel_array.dtype == np.uint8
    assert d.PhotometricInterpretation == "MONOCHROME2" and d.SOPInstanceUID != ds.SOPInstanceUID
    assert d.PatientID == "P1"
    png = np.asarray(Image.open(out / "us_enhanced.png"))
    assert np.array_equal(png, d.pixel_array)


def test_enhance_cli_refine_nllr_wiener(trained, tmp_path):
    """--refine nllr-wiener: NLLR + collaborative Wiener filtering guided by the network (GuidedNLLRWiener)."""
    from sonokit.enhance.hybrid import GuidedNLLRWiener

    img = (np.random.default_rng(1).random((40, 56)) * 255).astype(np.uint8)
    save(tmp_path / "in" / "a.png", img)
    ck = trained / "checkpoints" / "best.ckpt"
    ok(runner.invoke(app, ["enhance", str(tmp_path / "in"), "--checkpoint", str(ck), "--out", str(tmp_path / "out"),
                           "--tile", "32", "--overlap", "24", "--refine", "nllr-wiener", "--guide-weight", "0.4"]))
    got = np.asarray(Image.open(tmp_path / "out" / "a_enhanced.png"))
    net, _ = load_enhancer(ck)
    x = img.astype(np.float32) / 255
    want = GuidedNLLRWiener(net, guide_weight=0.4, tile=32, overlap=24)(x)
    assert np.abs(got.astype(int) - np.round(want * 255).astype(int)).max() <= 1
    plain = enhance_image(net, x, tile=32, overlap=24)  # the refinement changes the network's output
    assert np.abs(want - plain).mean() > 1e-3
    for bad, msg in ((["--refine", "bm3d"], "--refine must be none or nllr-wiener"),
                     (["--refine", "nllr-wiener", "--guide-weight", "2"], "--guide-weight must be in")):
        r = runner.invoke(app, ["enhance", str(tmp_path / "in"), "--checkpoint", str(ck), "--out", str(tmp_path / "o2"), *bad])
        assert isinstance(r.exception, ConfigError) and msg in str(r.exception)
    with pytest.raises(ValueError, match="guide_weight"):
        GuidedNLLRWiener(net, guide_weight=-1)


def test_tiled_equals_whole_image_when_overlap_covers_receptive_field():
    torch.manual_seed(0)
    net = create_enhancer("dncnn_small").eval()  # 10 3x3 layers: receptive-field radius 10 px
    img = np.random.default_rng(1).random((70, 90)).astype(np.float32)
    whole = enhance_image(net, img, tile=512)
    tiled = enhance_image(net, img, tile=32, overlap=24)  # each seam side keeps 12 >= 10 px of context
    assert tiled.shape == whole.shape == (70, 90)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    seamy = enhance_image(net, img, tile=32, overlap=4)  # too little context: differs at the seams
    assert np.abs(seamy - whole).max() > 1e-4
    small = enhance_image(net, img[:20, :25], tile=32)  # smaller than one tile: processed whole
    assert small.shape == (20, 25)


def test_nan_and_unreadable_inputs_give_clear_errors(trained, tmp_path):
    net, _ = load_enhancer(trained / "checkpoints" / "last.ckpt")
    bad = np.zeros((40, 40), np.float32)
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="1 NaN/Inf pixel"):
        enhance_image(net, bad)
    (tmp_path / "in").mkdir()
    Image.fromarray(bad, mode="F").save(tmp_path / "in" / "nan.tif")
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG not really")
    save(tmp_path / "in" / "good.png", np.full((20, 30), 128, np.uint8))
    r = runner.invoke(app, ["enhance", str(tmp_path / "in"), "--checkpoint", str(trained / "checkpoints" / "last.ckpt"),
                            "--out", str(tmp_path / "out")])
    # each bad file is reported (named, with the reason) and skipped; one summary line; exit code 1
    out = r.output.replace("\n", " ")
    assert r.exit_code == 1, out
    assert "done 1, skipped 2 (see above)" in out and "nan.tif" in out and "NaN" in out and "broken.png" in out
    assert (tmp_path / "out" / "good_enhanced.png").exists()  # the readable image is still written
    r = runner.invoke(app, ["enhance", str(tmp_path / "in"), "--checkpoint", str(trained / "checkpoints" / "last.ckpt"),
                            "--out", str(tmp_path / "out_ff"), "--fail-fast"])
    assert isinstance(r.exception, DataError) and "broken.png" in str(r.exception) and "--fail-fast" in str(r.exception)
    r = runner.invoke(app, ["enhance", str(tmp_path / "in" / "good.png"), "--checkpoint",
                            str(trained / "checkpoints" / "last.ckpt"), "--out", str(tmp_path / "o2"), "--tile", "0"])
    assert isinstance(r.exception, ConfigError) and "--tile" in str(r.exception)


def test_unknown_model_did_you_mean(phantom, tmp_path):
    r = runner.invoke(app, [*_args(phantom, tmp_path / "r"), "--set", "model.name=dncnn_smal"])
    assert isinstance(r.exception, ConfigError) and "did you mean 'dncnn_small'" in str(r.exception)
    assert not (tmp_path / "r").exists()  # fails before the run folder or any target is made
    r = runner.invoke(app, [*_args(phantom, tmp_path / "r2"), "--set", "degrade.blur.axial_sigma=[-1, 2]"])
    assert isinstance(r.exception, ConfigError) and "axial_sigma" in str(r.exception)
    r = runner.invoke(app, [*_args(phantom, tmp_path / "r3"), "--set", "target.wiener=-1"])
    assert isinstance(r.exception, ConfigError) and "target.wiener must be >= 0" in str(r.exception)


def test_nllr_wiener_targets(phantom, tmp_path):
    """target.wiener adds the Wiener step to the NLLR targets; they get their own cache folder."""
    from sonokit.data import open_dataset
    from sonokit.data.pairs import EnhanceTargets
    from sonokit.enhance import nllr_denoise

    reader = open_dataset(phantom / "ph")
    ids = reader.ids[:1]
    kw = {"search": 6, "k": 8, "iterations": 1}
    plain = EnhanceTargets(reader, ids, nllr=kw, cache_dir=tmp_path)
    wiener = EnhanceTargets(reader, ids, nllr={**kw, "wiener": 1}, cache_dir=tmp_path)
    assert plain.cache_path != wiener.cache_path
    img = reader.get(ids[0]).image[0]
    want = nllr_denoise(img.astype(np.float32), **kw, wiener=1)
    assert np.allclose(wiener.targets[0].astype(np.float32), want, atol=1e-3)  # float16 cache
    assert not np.allclose(plain.targets[0], wiener.targets[0], atol=1e-3)


def test_target_cache_and_crops_are_deterministic(phantom, tmp_path):
    from sonokit.data import open_dataset

    reader = open_dataset(phantom / "ph")
    ids = reader.ids[:2]
    t1 = EnhanceTargets(reader, ids, target="nllr", nllr={"search": 6, "k": 8}, cache_dir=tmp_path)
    t2 = EnhanceTargets(reader, ids, target="nllr", nllr={"search": 6, "k": 8}, cache_dir=tmp_path)
    assert (t1.computed, t2.computed, t2.loaded) == (2, 0, 2)
    assert all(np.array_equal(a, b) for a, b in zip(t1.targets, t2.targets))
    t3 = EnhanceTargets(reader, ids, target="nllr", nllr={"search": 6, "k": 8, "sigma": 0.05}, cache_dir=tmp_path)
    assert t3.computed == 2  # other settings: another cache folder
    orig = EnhanceTargets(reader, ids, target="original")
    assert np.allclose(orig.targets[0], reader.get(ids[0]).image[0], atol=1e-3)
    ds = TargetCropDataset(t1, crop=40, patches_per_epoch=4, seed=3)
    a = ds[1]["target"]
    assert a.shape == (1, 40, 40) and torch.equal(a, ds[1]["target"])
    ds.set_epoch(1)
    assert not torch.equal(a, ds[1]["target"])
    with pytest.raises(ValueError, match="target must be one of"):
        EnhanceTargets(reader, ids, target="bm3d")


def test_losses_and_degradation_options():
    x, y = torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0])
    assert float(charbonnier_loss(x, y, eps=1e-3)) == pytest.approx((1e-3 + (1 + 1e-6) ** 0.5) / 2)
    assert float(enhancement_loss(x, y, kind="mse")) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="loss must be one of"):
        enhancement_loss(x, y, kind="ssim")
    assert degrade_margin({"blur": {"axial_sigma": [0, 1], "lateral_sigma": [0, 2]}, "noises": {}}) == 8
    with pytest.raises(ValueError, match="unknown noise model 'poisson'"):
        build_degradations({"noises": {"poisson": {}}})
    with pytest.raises(ValueError, match="sigma"):
        build_degradations({"noises": {"gaussian": {"sigma": [0.2, 0.1]}}})


def test_enhance_at_training_scale(phantom, tmp_path):
    from sonokit.enhance.inference import at_scale

    run = tmp_path / "small"
    ok(runner.invoke(app, _args(phantom, run) + ["--set", "data.max_side=48", "--set", "data.patch_size=16"]))
    ck = run / "checkpoints" / "best.ckpt"
    net, hp = load_enhancer(ck)
    assert hp["image"]["max_side"] == 48
    img = (np.random.default_rng(1).random((96, 80)) * 255).astype(np.uint8)
    save(tmp_path / "in" / "big.png", img)
    r = runner.invoke(app, ["enhance", str(tmp_path / "in" / "big.png"), "--checkpoint", str(ck), "--out",
                            str(tmp_path / "o1"), "--training-scale"])
    assert "note:" not in ok(r)
    got = np.asarray(Image.open(tmp_path / "o1" / "big_enhanced.png"))
    seen = []
    want = at_scale(lambda x: (seen.append(x.shape), enhance_image(net, x))[1], img / 255.0, 48)
    assert seen == [(48, 40)] and got.shape == (96, 80)
    assert np.abs(got.astype(int) - np.round(want * 255).astype(int)).max() <= 1
    r = runner.invoke(app, ["enhance", str(tmp_path / "in" / "big.png"), "--checkpoint", str(ck), "--out", str(tmp_path / "o2")])
    assert "trained on frames downscaled to <= 48 px" in ok(r).replace("\n", " ")
