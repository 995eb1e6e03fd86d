"""SF-RecSAM's losses on hand-computed values, and as configured loss terms."""
import math

import pytest
import torch

from sonokit.errors import ConfigError
from sonokit.tasks.losses import LOSSES, build_losses, check_loss_specs, total_loss
from sonokit.tasks.losses_sam import correction_loss, dice_bce, soft_dice, uncertainty_bce

LN2 = math.log(2)


def px(*v) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float32).view(1, 1, 1, -1)  # (1, 1, 1, N)


def test_dice_bce_by_hand_and_against_monai():
    logits, g = px(0, 0, 0, 0), px(1, 1, 0, 0)
    # p = 0.5: BCE = ln 2; Dice = 1 - (2 * 1 + e) / (2 + 2 + e) = 0.5
    assert soft_dice(logits, g).item() == pytest.approx(0.5, abs=1e-5)
    assert dice_bce(logits, g).item() == pytest.approx(LN2 + 0.5, abs=1e-5)
    g2 = torch.Generator().manual_seed(0)
    lg, m = torch.randn(3, 1, 8, 8, generator=g2), (torch.rand(3, 1, 8, 8, generator=g2) > 0.5).float()
    assert dice_bce(lg, m).item() == pytest.approx(LOSSES.create("dice_ce")(lg, m).item(), abs=1e-5)


def test_correction_loss_by_hand():
    initial = px(2, 2, -2, -2)  # predicted foreground: pixels 0, 1
    u = px(0.5, 0.05, 0.5, 0.5)  # pixel 1 is certain (u <= tau = 0.1): no correction target there
    g = px(0, 1, 1, 0)
    fp, fn = px(0, 9, 9, 9), px(9, 9, math.log(3), 0)
    # L_fp on {0}: BCE(0, 1 - g = 1) = ln 2; L_fn on {2, 3}: (BCE(ln 3, 1) + BCE(0, 0)) / 2 = (-ln 0.75 + ln 2) / 2
    expect = LN2 + (-math.log(0.75) + LN2) / 2
    assert correction_loss(fp, fn, initial, u, g).item() == pytest.approx(expect, abs=1e-5)
    assert correction_loss(fp, fn, initial, u, g, fp_weight=0).item() == pytest.approx(expect - LN2, abs=1e-5)
    assert correction_loss(fp, fn, initial, torch.zeros_like(u), g).item() == 0  # no uncertain pixel, no loss
    assert correction_loss(None, fn, initial, u, g).item() == pytest.approx(expect - LN2, abs=1e-5)  # FN-only model
    terms = build_losses([{"name": "sam_correction"}], default_target="mask")
    out = {"logits": fn, "initial_logits": initial, "uncertainty": u, "fn_logits": fn}
    assert total_loss(terms, out, {"mask": g})[0].item() == pytest.approx(expect - LN2, abs=1e-5)


def test_uncertainty_weighted_bce_by_hand():
    logits, u, g = px(0, 0), px(1, 0), px(1, 1)
    assert uncertainty_bce(logits, u, g).item() == pytest.approx((2 * LN2 + LN2) / 2, abs=1e-6)
    assert uncertainty_bce(logits, u, g, gamma=0).item() == pytest.approx(LN2, abs=1e-6)


def test_terms_read_every_output_and_the_mask():
    out = {"logits": px(0, 0, 0, 0), "coarse_logits": px(10, 10, -10, -10), "initial_logits": px(2, 2, -2, -2),
           "uncertainty": px(0.5, 0.5, 0.5, 0.5), "fp_logits": px(0, 0, 0, 0), "fn_logits": px(0, 0, 0, 0)}
    b = {"image": torch.zeros(1, 1, 1, 4), "mask": px(1, 1, 0, 0)}
    spec = [{"name": "sam_dice_bce", "weights": [1.0, 0.5]}, {"name": "sam_correction", "weight": 0.5},
            {"name": "sam_uncertainty_bce"}]
    check_loss_specs(spec)
    loss, parts = total_loss(build_losses(spec, default_target="mask"), out, b)
    assert parts["sam_dice_bce"].item() == pytest.approx(LN2 + 0.5 + 0.5 * dice_bce(out["coarse_logits"], b["mask"]).item(),
                                                         abs=1e-5)
    assert parts["sam_correction"].item() == pytest.approx(2 * LN2, abs=1e-5)
    assert parts["sam_uncertainty_bce"].item() == pytest.approx(1.5 * LN2, abs=1e-5)
    assert loss.item() == pytest.approx(parts["sam_dice_bce"].item() + LN2 + 1.5 * LN2, abs=1e-5)


def test_missing_outputs_and_bad_options_are_config_errors():
    terms = build_losses([{"name": "sam_correction"}], default_target="mask")
    with pytest.raises(ConfigError, match="reads model outputs fp_logits, fn_logits, initial_logits, uncertainty, but "
                                          "the model returns logits, coarse_logits .* corrector: dual \\(fp / fn"):
        total_loss(terms, {"logits": px(0), "coarse_logits": px(0)}, {"mask": px(1)})
    with pytest.raises(ConfigError, match="compares with the batch key 'mask'"):
        total_loss(build_losses([{"name": "sam_dice_bce"}], default_target="mask"),
                   {"logits": px(0), "coarse_logits": px(0)}, {"image": px(1)})
    with pytest.raises(ConfigError, match="weights must be 2 numbers >= 0"):
        LOSSES.create("sam_dice_bce", weights=[1.0])
    with pytest.raises(ConfigError, match="unknown key 'loss\\[0\\].gama'"):
        check_loss_specs([{"name": "sam_uncertainty_bce", "gama": 2}])
