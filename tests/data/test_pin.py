"""Pinned splits and the checks evaluate runs against a model's training data."""
import pytest

from sonokit.data import open_dataset
from sonokit.data.pin import changed_files, data_changes, pin_split, record_digest, training_record
from sonokit.data.splits import load_split, make_split, save_split

from ..conftest import blob, save


@pytest.fixture
def folder(tmp_path):
    for i in range(10):
        img, m = blob(20, 24, seed=i)
        save(tmp_path / "ds" / "images" / f"s{i}.png", img)
        save(tmp_path / "ds" / "masks" / f"s{i}.png", m)
    reader = open_dataset(tmp_path / "ds")
    split = make_split(reader.ids, labels={i: None for i in reader.ids}, seeds=(0,), fractions=(1.0,))
    path = save_split(pin_split(split, reader), tmp_path / "split.json")
    return tmp_path, reader, path


def test_digests_follow_the_bytes_of_image_and_mask(folder):
    tmp, reader, path = folder
    rec = reader.record("s0")
    d = record_digest(rec)
    assert d == record_digest(rec) and len(d) == 16
    sp = load_split(path)
    assert sp["pinned"] and changed_files(sp, reader, reader.ids) == []
    img, _ = blob(20, 24, seed=99)
    save(rec.masks[0], img)  # the mask file changes
    assert [i for i, _ in changed_files(sp, reader, reader.ids)] == ["s0"]


def test_data_changes_names_a_rewritten_split_and_leaked_test_images(folder):
    tmp, reader, path = folder
    sp = load_split(path)
    trained = training_record(sp, str(path), sp["train"], sp["val"])
    assert data_changes(trained, split_path=str(path), part="test", ids=sp["test"], reader=reader) == []
    # the split is rewritten at the same path: training images end up in "test"
    new = dict(sp, test=sp["test"] + sp["train"][:2], train=sp["train"][2:])
    save_split({k: v for k, v in new.items() if k not in ("hash", "pinned")}, path, overwrite=True)
    problems = data_changes(trained, split_path=str(path), part="test", ids=new["test"], reader=reader)
    assert any("changed since this model was trained" in p for p in problems)
    assert any("2 of the" in p and "were training or validation images" in p for p in problems)
