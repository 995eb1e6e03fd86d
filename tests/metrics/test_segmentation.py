import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from sonokit.data.preprocess import Letterbox, letterbox, unletterbox
from sonokit.metrics import aggregate, segmentation_metrics


def test_letterbox_roundtrip():
    x = torch.zeros(1, 30, 50)
    x[:, 5:20, 10:40] = 1
    y, box = letterbox(x, 64)
    assert y.shape == (1, 64, 64) and box == Letterbox.fit(30, 50, 64)
    assert box.new_w == 64 and box.new_h == 38 and box.top == 13
    assert y[:, :box.top].abs().sum() == 0  # padding
    back = unletterbox(y, box)
    assert back.shape == (1, 30, 50)
    assert ((back > 0.5) == (x > 0.5)).float().mean() > 0.97


def test_metrics_hand_computed():
    gt = np.zeros((20, 20), bool)
    gt[5:15, 5:15] = True  # 100 px
    pred = np.zeros_like(gt)
    pred[5:15, 10:20] = True  # 100 px, 50 overlap
    m = segmentation_metrics(pred, gt)
    assert m["dice"] == pytest.approx(0.5) and m["iou"] == pytest.approx(50 / 150)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    # independent HD95: 95th percentile of symmetric boundary-to-boundary distances
    def border(a):
        return a & ~ndimage.binary_erosion(a)

    dt_gt = ndimage.distance_transform_edt(~border(gt))
    dt_pr = ndimage.distance_transform_edt(~border(pred))
    d = np.concatenate([dt_gt[border(pred)], dt_pr[border(gt)]])
    assert m["hd95"] == pytest.approx(np.percentile(d, 95), abs=0.6)
    m2 = segmentation_metrics(pred, gt, spacing=(0.5, 0.5))
    assert m2["hd95"] == pytest.approx(m["hd95"] * 0.5, rel=1e-5)


def test_empty_mask_rule():
    z = np.zeros((8, 8), bool)
    o = z.copy()
    o[2:4, 2:4] = True
    assert segmentation_metrics(z, z) == {"dice": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0, "hd95": 0.0}
    for p, g in ((o, z), (z, o)):
        m = segmentation_metrics(p, g)
        assert m["dice"] == m["iou"] == m["precision"] == m["recall"] == 0.0 and math.isnan(m["hd95"])
    agg = aggregate([segmentation_metrics(o, o), segmentation_metrics(z, o)])
    assert agg["dice"]["mean"] == 0.5 and agg["hd95"]["n"] == 1


def test_binary_overlap_is_the_one_dice_of_training_and_evaluation():
    from sonokit.metrics import binary_overlap

    pred = torch.zeros(3, 1, 4, 4, dtype=torch.bool)
    gt = torch.zeros(3, 1, 4, 4, dtype=torch.bool)
    pred[0, 0, :2] = True  # 8 px
    gt[0, 0, 1:3] = True  # 8 px, 4 overlap
    gt[1, 0, 0, 0] = True  # prediction empty, ground truth not
    m = binary_overlap(pred, gt)  # image 2: both empty
    assert m["dice"].tolist() == [0.5, 0.0, 1.0] and m["iou"].tolist() == [4 / 12, 0.0, 1.0]
    for i in range(3):
        ref = segmentation_metrics(pred[i, 0].numpy(), gt[i, 0].numpy())
        assert ref["dice"] == m["dice"][i].item()
