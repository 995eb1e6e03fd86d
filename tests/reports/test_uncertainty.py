"""The report's uncertainty overlays: image | uncertainty heat-map | FP / FN maps for the gallery's cases."""
import numpy as np
import pytest
from PIL import Image

from sonokit.reports import build_report
from sonokit.reports.uncertainty import MAPS, case_maps, error_uncertainty, heat_panel

from .fake_runs import disc, make_dataset, make_run, seg_eval, write_split


def _run(tmp_path, *, maps=MAPS):
    root, ids = make_dataset(tmp_path / "ds", n=5)
    split = tmp_path / "split.json"
    h = write_split(split, ids)
    run = make_run(tmp_path / "run", task="segment", name="sam", data_root=root, split=split, split_hash=h)
    seg_eval(run, ids[2:], root, split)
    for m in maps:  # uncertainty high on the predicted mask's edge, FP / FN maps somewhere
        for i, sid in enumerate(ids[2:]):
            pred = np.asarray(Image.open(run / "eval" / "test_pred" / f"{sid}.png")) > 0
            u = (pred ^ np.roll(pred, 1, axis=0)).astype(np.float32) if m == "uncertainty" else disc(32, 8, 8, 4) * 0.8
            (run / "eval" / f"test_{m}").mkdir(parents=True, exist_ok=True)
            Image.fromarray((u * 255).astype(np.uint8)).save(run / "eval" / f"test_{m}" / f"{sid}.png")
    return run


def test_report_shows_the_maps_of_the_gallery_cases(tmp_path):
    html = build_report(_run(tmp_path)).read_text()
    assert "Uncertainty: sam, seed 0, evaluation test" in html
    section = html[html.index("Uncertainty: sam"):]
    assert section.count("<div class='case'>") == 3  # the three evaluated cases
    for title in ("image: truth (green), prediction (red)", "uncertainty", "FP map (red)", "FN map (blue)"):
        assert f"<figcaption>{title}</figcaption>" in section
    assert "u wrong" in section and "u right" in section


def test_only_the_maps_written_are_shown_and_none_means_no_section(tmp_path):
    html = build_report(_run(tmp_path / "a", maps=("uncertainty",))).read_text()
    section = html[html.index("Uncertainty: sam"):]
    assert "<figcaption>uncertainty</figcaption>" in section and "FP map" not in section
    html = build_report(_run(tmp_path / "b", maps=())).read_text()
    assert "Uncertainty:" not in html and "Gallery: sam" in html


def test_heat_panel_colours_and_outline():
    img = np.full((20, 20), 0.5, np.float32)
    heat = np.zeros((20, 20), np.float32)
    heat[:, 10:] = 1.0
    pred = disc(20, 10, 10, 5)
    rgb = heat_panel(img, heat, pred)
    assert rgb.shape == (20, 20, 3) and rgb.dtype == np.uint8
    assert rgb[0, 15].mean() > rgb[0, 2].mean() + 60  # uncertain: bright; certain: dark
    white = (rgb == 255).all(-1)
    assert white.any() and not (white & ~pred).any() and not white[10, 10]  # the prediction's outline in white
    red = heat_panel(img, heat, np.zeros_like(pred), tint=(1.0, 0.0, 0.0))
    assert (red[0, 2] == 127).all() and red[0, 15, 0] > 200 > red[0, 15, 1] + 100  # 0: the image; 1: red


def test_case_maps_sizes_and_errors():
    img = np.random.default_rng(0).random((1, 30, 40)).astype(np.float32)
    gt, pred = disc((30, 40), 15, 20, 6), disc((30, 40), 15, 22, 6)
    panels = case_maps(img, gt, pred, {"uncertainty": np.zeros((30, 40), np.float32)}, min_side=80)
    assert [t for t, _ in panels][1] == "uncertainty" and all(p.shape == (60, 80, 3) for _, p in panels)
    with pytest.raises(ValueError, match="uncertainty map is 20x10 but its image is 40x30"):
        case_maps(img, gt, pred, {"uncertainty": np.zeros((10, 20), np.float32)})
    u = np.where(gt != pred, 0.9, 0.1).astype(np.float32)
    wrong, right = error_uncertainty(u, gt, pred)
    assert wrong == pytest.approx(0.9) and right == pytest.approx(0.1)
    assert error_uncertainty(u, gt, gt)[0] is None
