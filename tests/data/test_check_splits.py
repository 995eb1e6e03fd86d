import json

import numpy as np
import pytest

from sonokit.data import open_dataset
from sonokit.data.check import check_dataset, hamming, phash
from sonokit.data.splits import load_split, make_split, save_split, select_ids, split_from_report
from sonokit.errors import DataError

from ..conftest import REPO, blob, save


def test_phash_stable_and_sensitive():
    img = blob(64, 64, seed=1)[0] / 255.0
    assert phash(img) == phash(img.copy())
    assert hamming(phash(img), phash(np.clip(img + 0.01, 0, 1))) <= 2
    other = np.random.default_rng(5).random((64, 64))
    assert hamming(phash(img), phash(other)) > 10


def test_check_finds_problems(busi_tree):
    root = busi_tree / "Dataset_BUSI_with_GT"
    (root / "benign" / "benign (2).png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    # an exact duplicate filed under another class
    (root / "malignant" / "malignant (2).png").write_bytes((root / "benign" / "benign (3).png").read_bytes())
    m = np.zeros((40, 48), np.uint8)
    m[5:9, 5:9] = 255
    m[20, 20] = 128
    save(root / "benign" / "benign (3)_mask.png", m)
    rep = check_dataset(open_dataset(busi_tree))
    assert rep.n_images == 6 and rep.n_readable == 5 and not rep.ok
    text = json.dumps(rep.summary())
    assert "benign (2).png" in text and "cannot read image" in text
    assert rep.exact_duplicates == [["benign/benign (3)", "malignant/malignant (2)"]]
    assert "filed under different classes" in text
    assert "non-binary mask" in text


def test_split_groups_never_cross_and_fractions_nest():
    ids = [f"s{i}" for i in range(200)]
    labels = {i: ("a" if k % 3 else "b") for k, i in enumerate(ids)}
    groups = {i: f"g{k // 4}" for k, i in enumerate(ids)}  # patients with 4 frames
    dups = [["s0", "s100"], ["s5", "s150", "s199"]]
    sp = make_split(ids, labels=labels, groups=groups, duplicate_groups=dups, seeds=(0, 1))
    parts = {p: set(sp[p]) for p in ("train", "val", "test")}
    assert sum(map(len, parts.values())) == 200 and not (parts["train"] & parts["test"]) and not (parts["val"] & parts["test"])
    where = {i: p for p, s in parts.items() for i in s}
    for g in {*groups.values()}:
        assert len({where[i] for i in ids if groups[i] == g}) == 1
    for d in dups:
        assert len({where[i] for i in d}) == 1
    assert 30 <= len(parts["test"]) <= 50 and 12 <= len(parts["val"]) <= 28
    for seed in ("0", "1"):
        s20, s50, s100 = (set(sp["subsets"][seed][k]) for k in ("0.2", "0.5", "1"))
        assert s20 < s50 < s100 == parts["train"]
        assert abs(len(s20) / len(s100) - 0.2) < 0.03
    assert sp["subsets"]["0"]["0.2"] != sp["subsets"]["1"]["0.2"]
    # stratified: class balance of test close to overall
    frac_b = sum(labels[i] == "b" for i in parts["test"]) / len(parts["test"])
    assert abs(frac_b - 1 / 3) < 0.1
    # deterministic
    assert make_split(ids, labels=labels, groups=groups, duplicate_groups=dups, seeds=(0, 1)) == sp


def test_split_file_roundtrip_and_errors(tmp_path, busi_tree):
    r = open_dataset(busi_tree)
    sp = split_from_report(check_dataset(r), r, seeds=(0,))
    p = save_split(sp, tmp_path / "s.json")
    back = load_split(p)
    assert {k: back[k] for k in sp} == {**sp, "version": 2} and back["hash"] and back["pinned"] is False
    with pytest.raises(DataError, match="already exists.*--force"):
        save_split(sp, p)
    save_split(sp, p, overwrite=True)
    edited = json.loads(p.read_text())
    edited["test"] = edited["test"][:-1]
    p.write_text(json.dumps(edited))
    with pytest.raises(DataError, match="changed after it was written"):
        load_split(p)
    assert select_ids(sp, "train", seed=0, fraction=0.5) == sp["subsets"]["0"]["0.5"]
    with pytest.raises(DataError, match="seeds"):
        select_ids(sp, "train", seed=7, fraction=0.5)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="not a sonokit split file"):
        load_split(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="val \\+ test < 1"):
        make_split(["a"], labels={}, val=0.6, test=0.5)


@pytest.mark.realdata
def test_real_busi_check_reports_780_and_known_duplicate(real_busi):
    rep = check_dataset(open_dataset(real_busi, "busi"))
    assert rep.n_images == 780 and rep.ok
    assert dict(rep.classes) == {"benign": 437, "malignant": 210, "normal": 133}
    assert ["benign/benign (433)", "malignant/malignant (145)"] in rep.exact_duplicates
    assert len(rep.colour_images) == 16


@pytest.mark.realdata
def test_committed_busi_split_is_consistent(real_busi):
    sp = load_split(REPO / "splits" / "busi_v1.json")
    where = {i: p for p in ("train", "val", "test") for i in sp[p]}
    assert len(where) == 780
    for g in sp["duplicate_groups"]:
        assert len({where[i] for i in g}) == 1, g
    assert where["benign/benign (433)"] == where["malignant/malignant (145)"]
