"""Extra model outputs (SF-RecSAM's uncertainty and FP / FN correction maps) kept by inference on request."""
from __future__ import annotations

import numpy as np
import torch

from sonokit.inference.files import EXTRA_FILES, segment_to_files
from sonokit.inference.segmenter import Segmenter
from tests.models.sam._util import tiny


def _segmenter(**kw) -> Segmenter:
    model = tiny("sfrecsam", corrector="dual", mc_samples=2).eval()
    return Segmenter(model, 64, {"model": "sfrecsam", "image_size": 64}, torch.device("cpu"), **kw)


def _image(h=50, w=70, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w)).astype(np.float32)


def test_predict_maps_returns_every_extra_at_the_image_size_in_unit_range():
    seg = _segmenter()
    maps = seg.predict_maps([_image(), _image(40, 30, 1)])
    assert [sorted(m) for m in maps] == [["fn", "fp", "initial", "prob", "uncertainty"]] * 2
    for m, shape in zip(maps, [(50, 70), (40, 30)]):
        for v in m.values():
            assert v.shape == shape and v.dtype == np.float32 and 0 <= v.min() and v.max() <= 1


def test_probability_is_the_same_with_or_without_extras():
    seg = _segmenter()
    im = _image()
    np.testing.assert_allclose(seg.predict_maps([im])[0]["prob"], seg.predict_batch([im])[0], atol=1e-6)
    assert list(seg.predict_maps([im], extras=False)[0]) == ["prob"]


def test_large_path_extras_match_the_plain_path_within_resampling():
    seg = _segmenter()
    big = _segmenter(large_pixels=1000)
    im = _image(60, 60, 2)
    plain, large = seg.segment(im, extras=True), big.segment(im, extras=True)
    assert large.large and sorted(large.extras) == ["fn", "fp", "initial", "uncertainty"]
    for k in large.extras:
        assert large.extras[k].dtype == np.uint8 and large.extras[k].shape == (60, 60)
        assert np.abs(large.extras[k].astype(float) / 255 - plain.extras[k]).max() < 0.1


def test_segment_to_files_writes_the_maps_named_after_the_input(tmp_path):
    from PIL import Image

    from sonokit.data.inputs import collect_inputs

    Image.fromarray((_image() * 255).astype(np.uint8)).save(tmp_path / "scan.png")
    item = collect_inputs([tmp_path / "scan.png"]).items[0]
    out = tmp_path / "out"
    res = segment_to_files(_segmenter(), item, out, save_uncertainty=True)
    assert res.extras == EXTRA_FILES == ("uncertainty", "fp", "fn", "initial")
    for k in EXTRA_FILES:
        assert np.asarray(Image.open(out / f"scan_{k}.png")).shape == (50, 70)
    assert "scan_uncertainty.png" in res.line()
    plain = segment_to_files(_segmenter(), item, tmp_path / "plain")
    assert plain.extras == () and not (tmp_path / "plain" / "scan_fp.png").exists()


def test_evaluation_writes_extra_maps_only_when_asked(tmp_path):
    from sonokit.evaluation import evaluate_segmentation
    from tests.reports.fake_runs import make_dataset

    root, ids = make_dataset(tmp_path / "ds", n=2)
    evaluate_segmentation(_segmenter(), data_root=root, data_format=None, ids=ids, out_dir=tmp_path / "ev",
                          name="test", save_uncertainty=True)
    for k in EXTRA_FILES:
        assert sorted(p.name for p in (tmp_path / "ev" / f"test_{k}").iterdir()) == [f"{i}.png" for i in ids]
    evaluate_segmentation(_segmenter(), data_root=root, data_format=None, ids=ids, out_dir=tmp_path / "ev2",
                          name="test")
    assert not (tmp_path / "ev2" / "test_uncertainty").exists()
