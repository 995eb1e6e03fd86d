import csv

import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from sonokit.data import open_dataset
from sonokit.data.datasets.hc18 import fill_outline
from sonokit.errors import DataError

from ..conftest import blob, save


def test_busi_reader_union_labels_normal(busi_tree):
    r = open_dataset(busi_tree)
    assert r.name == "busi" and len(r) == 6
    assert r.ids[0] == "benign/benign (1)"
    s = r.get("benign/benign (1)")
    assert s.image.shape == (1, 40, 48) and s.mask.shape == (1, 40, 48) and s.label == "benign"
    _, single = blob(40, 48, seed=hash(("benign", 1)) % 1000)
    assert s.mask.sum() == (single > 0).sum() + 16  # union with the 4x4 extra lesion
    assert r.get("normal/normal (1)").mask.sum() == 0


def test_busi_missing_and_mismatched_mask(busi_tree):
    root = busi_tree / "Dataset_BUSI_with_GT" / "malignant"
    (root / "malignant (2)_mask.png").unlink()
    save(root / "malignant (1)_mask.png", np.zeros((10, 10), np.uint8))
    r = open_dataset(busi_tree, "busi")
    assert any("missing mask" in m and "malignant (2)" in f for f, m in r.problems)
    with pytest.raises(DataError, match=r"no mask found for image '.*malignant \(2\).png'"):
        r.get("malignant/malignant (2)")
    with pytest.raises(DataError, match=r"mask '.*malignant \(1\)_mask.png' is 10x10 .* is 48x40; expected equal sizes"):
        r.get("malignant/malignant (1)")


def test_udiat_layout_with_labels(tmp_path):
    import openpyxl

    for i in (1, 2, 3):
        img, m = blob(30, 34, seed=i)
        save(tmp_path / "original" / f"{i:06d}.png", img)
        save(tmp_path / "GT" / f"{i:06d}.png", (m > 0).astype(bool))  # 1-bit masks
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Image", "Type", "Size"])
    ws.append(["000001", "Benign", 3])
    ws.append([2, "CANCER", 5])
    wb.save(tmp_path / "DatasetB.xlsx")
    r = open_dataset(tmp_path)
    assert r.name == "udiat" and r.labels == ["benign", "malignant", None]
    assert r[0].mask.sum() > 0 and r[0].mask.max() == 1


def test_breast_layout(tmp_path):
    root = tmp_path / "BrEaST-Lesions_USG-images_and_masks"
    for i, cls in ((1, "Benign"), (2, "Malignant"), (3, "Normal")):
        img, m = blob(32, 32, seed=i)
        save(root / f"case{i:03d}.png", img)
        if cls != "Normal":
            save(root / f"case{i:03d}_tumor.png", m)
            save(root / f"case{i:03d}_other1.png", np.zeros_like(m))
    with open(tmp_path / "BrEaST-Lesions-USG-clinical-data.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["CaseID", "Image_filename", "Classification"])
        for i, cls in ((1, "benign"), (2, "malignant"), (3, "normal")):
            w.writerow([i, f"case{i:03d}.png", cls])
    r = open_dataset(tmp_path)
    assert r.name == "breast" and r.ids == ["case001", "case002", "case003"]
    assert r.labels == ["benign", "malignant", "normal"]
    assert r.get("case003").mask.sum() == 0 and r.get("case001").mask.sum() > 0
    assert "other_masks" in r.get("case001").meta and not r.problems


def test_hc18_fill_outline_and_groups(tmp_path):
    from skimage.draw import ellipse_perimeter

    d = tmp_path / "training_set"
    outline = np.zeros((60, 80), np.uint8)
    rr, cc = ellipse_perimeter(30, 40, 20, 30, shape=outline.shape)
    outline[rr, cc] = 255
    for name in ("001_HC", "001_2HC", "002_HC"):
        save(d / f"{name}.png", blob(60, 80)[0])
        save(d / f"{name}_Annotation.png", outline)
    with open(tmp_path / "training_set_pixel_size_and_HC.csv", "w") as f:
        f.write("filename,pixel size(mm),head circumference (mm)\n001_HC.png,0.1,50\n001_2HC.png,0.1,50\n002_HC.png,0.2,60\n")
    r = open_dataset(tmp_path)
    assert r.name == "hc18"
    s = r.get("001_HC")
    filled = s.mask[0]
    assert filled.sum() > 10 * (outline > 0).sum() and filled[30, 40] == 1 and filled[0, 0] == 0
    assert abs(filled.sum() - np.pi * 20 * 30) / (np.pi * 20 * 30) < 0.1
    assert s.spacing == (0.1, 0.1) and r.get("002_HC").spacing == (0.2, 0.2)
    assert r.record("001_HC").group == r.record("001_2HC").group != r.record("002_HC").group


def test_fill_outline_with_gap_falls_back_to_ellipse_fit():
    from skimage.draw import ellipse_perimeter

    o = np.zeros((60, 80), np.uint8)
    rr, cc = ellipse_perimeter(30, 40, 20, 30, shape=o.shape)
    o[rr, cc] = 1
    o[28:33, :20] = 0  # open gap on the left
    f = fill_outline(o)
    assert abs(f.sum() - np.pi * 20 * 30) / (np.pi * 20 * 30) < 0.15


def test_folder_layout_labels_csv(tmp_path):
    for i in range(3):
        img, m = blob(20, 20, seed=i)
        save(tmp_path / "images" / f"im{i}.png", img)
        save(tmp_path / "masks" / (f"im{i}_mask.png" if i == 0 else f"im{i}.png"), m)
    (tmp_path / "labels.csv").write_text("id,label,spacing_mm\nim0,a,0.5\nim1,b,\n")
    r = open_dataset(tmp_path)
    assert r.name == "folder" and len(r) == 3 and r.labels == ["a", "b", None]
    assert r.get("im0").spacing == (0.5, 0.5) and r.get("im0").mask.sum() > 0


def test_empty_folder_and_wrong_format(tmp_path, busi_tree):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot tell the dataset format of '.*empty'"):
        open_dataset(tmp_path / "empty")
    (tmp_path / "e2" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no folder images found under '.*e2'; expected images/"):
        open_dataset(tmp_path / "e2", "folder")
    with pytest.raises(DataError, match=r"does not look like a hc18 dataset.*try --format busi"):
        open_dataset(busi_tree, "hc18")
    with pytest.raises(Exception, match="unknown dataset format 'bussi'; did you mean 'busi'"):
        open_dataset(busi_tree, "bussi")


def _dicom(path, arr, photometric="MONOCHROME2", frames=1, regions=True):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.PatientID = "P1"
    ds.Modality = "US"
    ds.Rows, ds.Columns = arr.shape[-3:-1] if arr.ndim >= 3 and photometric != "MONOCHROME2" else arr.shape[-2:]
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = 1 if photometric.startswith("MONO") else 3
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if regions:
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence

        r = Dataset()
        r.PhysicalUnitsXDirection = 3
        r.PhysicalUnitsYDirection = 3
        r.PhysicalDeltaX = 0.01
        r.PhysicalDeltaY = 0.02
        ds.SequenceOfUltrasoundRegions = Sequence([r])
    ds.PixelData = arr.astype(np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_mono_multiframe_and_ybr(tmp_path):
    rng = np.random.default_rng(0)
    mono = rng.integers(0, 255, (3, 16, 20), dtype=np.uint8)
    _dicom(tmp_path / "cine.dcm", mono, frames=3)
    rgb = np.zeros((16, 20, 3), np.uint8)
    rgb[..., 0] = rgb[..., 1] = rgb[..., 2] = mono[0]
    from pydicom.pixels import convert_color_space

    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    _dicom(tmp_path / "ybr.dcm", ybr, photometric="YBR_FULL", regions=False)
    r = open_dataset(tmp_path)
    assert r.name == "dicom" and r.ids == ["cine#0", "cine#1", "cine#2", "ybr"]
    s = r.get("cine#2")
    assert s.image.shape == (1, 16, 20) and np.allclose(s.image[0] * 255, mono[2], atol=1e-3)
    assert s.spacing == pytest.approx((0.2, 0.1)) and s.mask is None
    y = r.get("ybr")
    assert np.abs(y.image[0] * 255 - mono[0]).max() <= 2.5  # YBR->RGB rounding


def test_dicom_corrupt_file_reported(tmp_path):
    (tmp_path / "bad.dcm").write_bytes(b"garbage")
    _dicom(tmp_path / "good.dcm", np.zeros((8, 8), np.uint8))
    r = open_dataset(tmp_path, "dicom")
    assert r.ids == ["good"] and "bad.dcm" in r.problems[0][0]


@pytest.mark.realdata
def test_real_hc18_reader(real_hc18):
    r = open_dataset(real_hc18)
    assert r.name == "hc18" and len(r) == 999
    s = r.get("000_HC")
    assert s.spacing[0] == pytest.approx(0.069135804) and s.mask.mean() > 0.05
    assert r.record("392_HC").group == r.record("392_2HC").group


def test_fill_outline_keeps_an_already_filled_annotation():
    from skimage.draw import ellipse

    m = np.zeros((60, 80), np.uint8)
    rr, cc = ellipse(30, 40, 20, 30, shape=m.shape)
    m[rr, cc] = 1
    assert np.array_equal(fill_outline(m), m)
