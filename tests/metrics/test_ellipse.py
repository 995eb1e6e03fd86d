"""Head circumference: the moment ellipse of a mask's largest region, its Ramanujan perimeter, mm from spacing;
and the HC columns of segmentation evaluation when a sample records a reference HC."""
import math

import numpy as np
import pytest
from skimage.draw import ellipse, ellipse_perimeter

from sonokit.metrics.ellipse import ellipse_perimeter as perimeter
from sonokit.metrics.ellipse import fit_ellipse, head_circumference


def filled(shape, r, c, a, b, rot=0.0):
    m = np.zeros(shape, bool)
    rr, cc = ellipse(r, c, a, b, shape=shape, rotation=rot)
    m[rr, cc] = True
    return m


def test_perimeter_of_circle_and_flat_ellipse():
    assert perimeter(10, 10) == pytest.approx(2 * math.pi * 10)
    assert perimeter(10, 0) == pytest.approx(40, rel=1e-3)  # a segment traced twice
    assert perimeter(0, 0) == 0
    with pytest.raises(ValueError):
        perimeter(-1, 2)


@pytest.mark.parametrize("rot", [0.0, 0.4, 1.3])
def test_fit_recovers_axes_of_a_drawn_ellipse(rot):
    m = filled((300, 400), 150, 200, 110, 70, rot)
    e = fit_ellipse(m)
    assert e.semi_major == pytest.approx(110, rel=0.01) and e.semi_minor == pytest.approx(70, rel=0.01)
    assert e.center == pytest.approx((150, 200), abs=0.5)
    assert head_circumference(m) == pytest.approx(perimeter(110, 70), rel=0.01)


def test_spacing_gives_mm_and_anisotropic_pixels_are_scaled():
    m = filled((300, 300), 150, 150, 100, 100)
    assert head_circumference(m, (0.2, 0.2)) == pytest.approx(2 * math.pi * 20, rel=0.01)
    # rows of 0.5 mm, columns of 0.25 mm: a pixel ellipse of 40 x 80 px is a circle of radius 20 mm
    m2 = filled((200, 300), 100, 150, 40, 80)
    assert head_circumference(m2, (0.5, 0.25)) == pytest.approx(2 * math.pi * 20, rel=0.015)


def test_largest_region_outline_and_empty():
    m = filled((200, 200), 100, 100, 60, 40)
    noise = m.copy()
    noise[5:9, 5:9] = True  # a speck elsewhere is ignored
    assert head_circumference(noise) == pytest.approx(head_circumference(m), rel=1e-6)
    rr, cc = ellipse_perimeter(100, 100, 60, 40, shape=m.shape)
    outline = np.zeros_like(m)
    outline[rr, cc] = True  # an outline (HC18's annotation style) is filled first
    assert head_circumference(outline) == pytest.approx(perimeter(60, 40), rel=0.02)
    assert math.isnan(head_circumference(np.zeros((20, 20), bool)))
    with pytest.raises(ValueError, match="2-D"):
        fit_ellipse(np.zeros((2, 3, 4)))


def test_evaluation_rows_carry_the_hc_error():
    from pathlib import Path

    from sonokit.data.sample import Sample
    from sonokit.evaluation.segment import head_circumference_row

    gt = filled((200, 200), 100, 100, 60, 40)
    ref = perimeter(60, 40) * 0.1
    s = Sample(gt[None].astype(np.float32), gt[None].astype(np.uint8), "x", Path("x.png"), spacing=(0.1, 0.1),
               meta={"head_circumference_mm": f"{ref:.3f}"})
    pred = filled((200, 200), 100, 100, 66, 40)
    row = head_circumference_row(s, pred)
    assert row["hc_ref_mm"] == pytest.approx(ref, abs=1e-3) and row["hc_err_mm"] > 1
    assert row["hc_abs_err_mm"] == pytest.approx(abs(row["hc_err_mm"])) and row["hc_mask_abs_err_mm"] < 0.3
    assert head_circumference_row(Sample(s.image, s.mask, "y", Path("y.png")), pred) == {}  # no reference, no columns
