"""Uncertainty calibration: the histogram AUROC against a direct count, the oracle correction, and the whole
scorer on a dataset with a fake model whose uncertainty is known."""
from __future__ import annotations

import numpy as np
import pytest

from sonokit.errors import ConfigError
from sonokit.evaluation.calibration import auroc_from_hist, dice, levels, oracle, uncertainty_calibration
from tests.reports.fake_runs import make_dataset


def pairwise_auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """P(score_pos > score_neg) + 0.5 P(equal), by comparing every pair."""
    p, n = score[positive], score[~positive]
    diff = p[:, None] - n[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_histogram_auroc_equals_the_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    score = rng.random(400)
    positive = rng.random(400) < 0.3 + 0.4 * score  # informative, imperfect
    lv = levels(score, 20)  # 20 levels: many ties
    pos, neg = np.bincount(lv[positive], minlength=20), np.bincount(lv[~positive], minlength=20)
    assert auroc_from_hist(pos, neg) == pytest.approx(pairwise_auroc(lv.astype(float), positive))
    assert 0.6 < auroc_from_hist(pos, neg) < 0.95
    assert auroc_from_hist([0, 0, 5], [5, 0, 0]) == 1.0 and auroc_from_hist([5, 0, 0], [0, 0, 5]) == 0.0
    assert auroc_from_hist([3], [7]) == 0.5 and np.isnan(auroc_from_hist([0, 0], [1, 2]))


def test_oracle_sets_the_top_fraction_to_the_truth():
    initial = np.zeros((4, 5), bool)
    gt = np.zeros((4, 5), bool)
    gt[0, :4] = True
    score = np.zeros((4, 5))
    score[0, :2] = [0.9, 0.8]  # the two most uncertain pixels are wrong ones
    fixed, k = oracle(initial, gt, score, 0.1)  # 10% of 20 pixels = 2
    assert k == 2 and fixed[0, :2].all() and fixed.sum() == 2
    assert dice(fixed, gt) == pytest.approx(2 * 2 / (2 + 4))
    assert dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
    assert (oracle(initial, gt, score, 0.0)[0] == initial).all()


class FakeSegmenter:
    """Initial mask: the ground truth shifted by 2 columns; uncertainty: exactly its wrong pixels (``perfect``)
    or noise; the final mask: the ground truth."""

    def __init__(self, masks: dict, *, perfect: bool = True, uncertainty: bool = True):
        self.masks, self.perfect, self.uncertainty = masks, perfect, uncertainty
        self.rng = np.random.default_rng(1)

    def predict_maps(self, images):
        out = []
        for im in images:
            gt = self.masks[im.tobytes()]
            init = np.roll(gt, 2, axis=1)
            wrong = init != gt
            u = wrong.astype(np.float32) * 0.9 if self.perfect else self.rng.random(gt.shape).astype(np.float32)
            d = {"prob": gt.astype(np.float32), "initial": np.where(init, 0.75, 0.25).astype(np.float32)}
            if self.uncertainty:
                d["uncertainty"] = u
            out.append(d)
        return out


def _fake(tmp_path, **kw):
    from sonokit.data import open_dataset

    root, ids = make_dataset(tmp_path / "ds", n=4)
    reader = open_dataset(root, None)
    masks = {reader.get(i).image.tobytes(): reader.get(i).mask[0].astype(bool) for i in ids}
    return FakeSegmenter(masks, **kw), root, ids


def test_a_perfect_uncertainty_scores_one_and_its_oracle_fixes_every_error(tmp_path):
    seg, root, ids = _fake(tmp_path)
    r = uncertainty_calibration(seg, data_root=root, data_format=None, ids=ids, budgets=(0.5,))
    assert r["n"] == 4 and r["initial_from"] == "initial"
    assert r["uncertainty"]["pixel_auroc"] == 1.0 and r["uncertainty"]["image_auroc_mean"] == 1.0
    assert r["final_dice"] == 1.0 and r["initial_dice"] < 0.9
    assert r["uncertainty"]["oracle_dice"]["0.5"] == 1.0  # 50% of the pixels covers every wrong one
    assert r["u_at_least_half"]["oracle_dice"] == 1.0
    assert r["u_at_least_half"]["flagged_fraction"] == pytest.approx(r["wrong_pixel_fraction"])
    # the margin of a constant-confidence initial mask (0.25 / 0.75 everywhere) carries no information
    assert r["margin"]["pixel_auroc"] == 0.5


def test_noise_uncertainty_is_near_chance_and_a_model_without_one_is_an_error(tmp_path):
    seg, root, ids = _fake(tmp_path, perfect=False)
    r = uncertainty_calibration(seg, data_root=root, data_format=None, ids=ids, budgets=(0.05,))
    assert abs(r["uncertainty"]["pixel_auroc"] - 0.5) < 0.1
    assert r["uncertainty"]["oracle_dice"]["0.05"] < 0.95
    seg, root, ids = _fake(tmp_path / "b", uncertainty=False)
    with pytest.raises(ConfigError, match="no uncertainty map"):
        uncertainty_calibration(seg, data_root=root, data_format=None, ids=ids)
