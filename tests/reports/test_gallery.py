"""Ground truth beside prediction: panels, overlay files, and `evaluate_segmentation(save_overlays=True)`."""
import numpy as np
from PIL import Image

from sonokit.reports.gallery import GT_COLOR, PRED_COLOR, case_panels, pick_cases, read_prediction, write_overlay

from .fake_runs import disc, make_dataset


def test_panels_tint_truth_green_and_prediction_red():
    img = np.full((40, 30), 0.5, np.float32)
    gt, pred = disc((40, 30), 20, 12, 6), disc((40, 30), 20, 18, 6)
    image, truth, predicted = case_panels(img, gt, pred)
    assert image.shape == truth.shape == predicted.shape == (40, 30, 3)
    assert (image == 127).all()  # the image alone, untouched
    g, r = truth[20, 12].astype(int), predicted[20, 18].astype(int)
    assert g[1] > g[0] and g[1] > g[2] and r[0] > r[1] and r[0] > r[2]
    assert (truth[20, 25] == 127).all() and (predicted[20, 5] == 127).all()  # outside each mask: the image
    assert len(case_panels(img, None, pred)) == 2  # no ground truth: image and prediction
    big = case_panels(img, gt, pred, min_side=100)  # small images are upscaled by an integer factor
    assert big[0].shape == (120, 90, 3)
    assert GT_COLOR != PRED_COLOR


def test_write_overlay_is_three_panels_side_by_side(tmp_path):
    img = np.random.default_rng(0).random((1, 24, 32)).astype(np.float32)
    m = disc((24, 32), 12, 16, 5)[None]
    p = write_overlay(tmp_path / "o" / "x.png", img, m, m)
    a = np.asarray(Image.open(p))
    assert a.shape == (24, 3 * 32 + 2 * 4, 3) and (a[:, 32:36] == 255).all()


def test_read_prediction_keeps_an_all_foreground_mask(tmp_path):
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "full.png")
    assert read_prediction(tmp_path / "full.png").all()


def test_pick_cases_best_median_worst_once_each():
    rows = [{"id": str(i), "dice": i / 10} for i in range(10)]
    picked = pick_cases(rows, k=2)
    assert [(k, r["id"]) for k, r in picked] == [("best", "9"), ("best", "8"), ("median", "4"), ("median", "5"),
                                                  ("worst", "0"), ("worst", "1")]
    assert len(pick_cases(rows[:3], k=3)) == 3


class _Segmenter:
    """Predicts each image's dark disc (its tissue is brighter): enough for evaluate_segmentation."""
    threshold = 0.5

    def predict_batch(self, images):
        return [(im[0] < 0.3).astype(np.float32) for im in images]


def test_evaluate_segmentation_writes_overlays_when_asked(tmp_path):
    from sonokit.evaluation import evaluate_segmentation

    root, ids = make_dataset(tmp_path / "ds", n=3)
    res = evaluate_segmentation(_Segmenter(), data_root=root, data_format=None, ids=ids, out_dir=tmp_path / "ev",
                                name="test", save_overlays=True)
    assert res["n"] == 3
    files = sorted(p.name for p in (tmp_path / "ev" / "test_overlays").iterdir())
    assert files == [f"{i}.png" for i in ids]
    a = np.asarray(Image.open(tmp_path / "ev" / "test_overlays" / files[0]))
    assert a.shape == (32, 3 * 32 + 8, 3)
    evaluate_segmentation(_Segmenter(), data_root=root, data_format=None, ids=ids, out_dir=tmp_path / "ev2")
    assert not (tmp_path / "ev2" / "test_overlays").exists()  # off by default
