"""`build_report` on hand-written run folders: run headers, metrics by task, curves, galleries."""
import re

import pytest

from sonokit.reports import build_report, fmt_mean_std
from sonokit.reports.curves import read_metrics

from .fake_runs import cls_eval, make_dataset, make_run, seg_eval, write_split

PRE_COLS = ("epoch", "step", "seconds", "train_loss", "train_nce", "train_rcl", "lr")
CLS_COLS = ("epoch", "step", "seconds", "train_loss", "val_loss", "val_accuracy", "val_balanced_accuracy", "val_auroc", "lr")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("rep")
    root, ids = make_dataset(d / "ds")
    split = d / "split.json"
    return {"dir": d, "root": root, "ids": ids, "split": split, "hash": write_split(split, ids)}


def _seg_run(data, run, name, seed=0, warnings=()):
    make_run(run, task="segment", name=name, seed=seed, data_root=data["root"], split=data["split"],
             split_hash=data["hash"])
    seg_eval(run, data["ids"], data["root"], data["split"], warnings=warnings)
    return run


@pytest.fixture(scope="module")
def grid(data):
    """An SSL-grid-like tree: two variants' fine-tunes in folders both called frac0.5_seed0, one pretraining run."""
    g = data["dir"] / "grid"
    _seg_run(data, g / "finetune" / "supervised" / "frac0.5_seed0", "supervised_frac0.5")
    _seg_run(data, g / "finetune" / "pirl_freq" / "frac0.5_seed0", "pirl_freq_frac0.5")
    make_run(g / "pretrain" / "pirl_freq", task="pretrain", name="pirl_freq", cols=PRE_COLS, scale=6.0,
             data_root=data["root"], split=data["split"], split_hash=data["hash"])
    return g


def _figures(page: str) -> list[tuple[str, str]]:
    """(alt, caption) of each training-curve figure."""
    return re.findall(r"<figure class='curves'><img src='[^']*' alt='([^']*)'><figcaption>(.*?)</figcaption>", page)


def test_fmt_mean_std_says_n_1_for_a_single_value():
    assert fmt_mean_std(0.81234, 0.0, n=1) == "0.812 (n = 1)"
    assert fmt_mean_std(0.8, 0.05, n=3) == "0.800 ± 0.050"
    assert fmt_mean_std(0.8, 0.05) == "0.800 ± 0.050"  # callers that don't know n (benchmarks) unchanged
    assert fmt_mean_std(float("nan"), 0.1, n=2) == "n/a"
    assert fmt_mean_std(12.345, 1.0, 1) == "12.3 ± 1.0"


def test_run_report_names_checkpoint_config_split_and_warnings(data):
    run = _seg_run(data, data["dir"] / "single", "busi_resunet18", warnings=["the split file changed"])
    page = build_report(run).read_text()
    assert "busi_resunet18, seed 0" in page and "segment" in page
    assert "checkpoint <code>checkpoints/best.ckpt</code>" in page
    assert "href='config.yaml'" in page and "<details><summary>config.yaml</summary>" in page
    assert "name: busi_resunet18" in page  # the config text, collapsed
    assert str(data["split"]) in page and data["hash"][:12] in page and "as in training" in page
    assert "data warning: the split file changed" in page
    # one run: mean ± std over runs is "n = 1", never a std of zero
    assert "(n = 1)" in page and "± 0.000" not in page
    assert "time.json" not in page  # eval/time.json is no evaluation


def test_checkpoint_not_recorded_and_changed_split_are_said(data, tmp_path):
    import json

    run = _seg_run(data, tmp_path / "r", "old")
    ev = json.loads((run / "eval" / "test.json").read_text())
    del ev["checkpoint"]
    (run / "eval" / "test.json").write_text(json.dumps(ev))
    (run / "data.json").write_text(json.dumps({**json.loads((run / "data.json").read_text()), "split_hash": "f" * 64}))
    page = build_report(run, tmp_path / "elsewhere.html").read_text()
    assert "not recorded in the evaluation" in page and "CHANGED since training" in page
    assert "href='r/config.yaml'" in page  # the link is relative to the report file


def test_classification_report_has_metrics_recall_and_confusion_matrix(data):
    run = make_run(data["dir"] / "cls", task="classify", name="busi_cls", cols=CLS_COLS, data_root=data["root"],
                   split=data["split"], split_hash=data["hash"])
    cls_eval(run, data["split"], data["root"])
    page = build_report(run).read_text()
    for s in ("accuracy", "balanced accuracy", "AUROC", "recall benign", "recall malignant", "0.611", "0.802"):
        assert s in page
    assert "alt='confusion matrix: busi_cls, seed 0 / test'" in page
    assert any(alt.startswith("classification training curves") for alt, _ in _figures(page))
    assert "No evaluations yet" not in page


def test_curves_are_labelled_by_run_name_and_pretraining_is_separate(grid):
    page = build_report(grid).read_text()
    figs = _figures(page)
    pre = [c for a, c in figs if a.startswith("pretraining curves")]
    seg = [c for a, c in figs if a.startswith("segmentation training curves")]
    assert len(pre) == 1 and "pirl_freq, seed 0" in pre[0] and "frac0.5" not in pre[0]
    assert len(seg) == 2  # one figure per sweep folder (variant)
    assert any("supervised_frac0.5, seed 0" in c for c in seg) and any("pirl_freq_frac0.5, seed 0" in c for c in seg)
    assert not any("runs: frac0.5_seed0" in c or "pirl_freq, seed 0" in c for c in seg)


def test_curve_figures_legends_axes_and_terms(grid, monkeypatch):
    """The figures themselves: legends hold run labels, axes are labelled, pretraining panels are its loss terms."""
    import sonokit.reports.figures as F
    import sonokit.reports.html as H
    from sonokit.reports.curves import curve_figures
    from sonokit.reports.runinfo import load_runs

    seen = []
    real = F.figure_png
    monkeypatch.setattr(F, "figure_png", lambda fig, dpi=90: (seen.append(fig), real(fig, dpi))[1])
    curve_figures(load_runs(H.find_runs(grid), grid))
    pre, *segs = seen
    assert [a.get_ylabel() for a in pre.axes] == ["total loss", "nce loss", "rcl loss"]
    for fig in segs:
        assert [a.get_ylabel() for a in fig.axes] == ["loss", "validation Dice"]
        assert all(a.get_xlabel() == "epoch" for a in fig.axes)
        labels = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
        assert len(labels) == 1 and labels[0].endswith("_frac0.5, seed 0")
        assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["train", "val"]


def test_many_runs_put_the_legend_outside(data, tmp_path, monkeypatch):
    import sonokit.reports.figures as F
    from sonokit.reports.curves import curves_figure
    from sonokit.reports.runinfo import load_runs

    paths = [make_run(tmp_path / f"s{s}", task="segment", name="sweep", seed=s) for s in range(5)]
    seen = []
    monkeypatch.setattr(F, "figure_png", lambda fig, dpi=90: seen.append(fig) or "x")
    curves_figure(load_runs(paths, tmp_path), "segment", "t")
    fig = seen[0]
    assert fig.legends and [t.get_text() for t in fig.legends[0].get_texts()] == [f"sweep, seed {s}" for s in range(5)]


def test_gallery_rows_hold_image_truth_and_prediction(grid):
    page = build_report(grid, grid / "g.html", galleries=[
        (grid / "finetune" / "pirl_freq" / "frac0.5_seed0", "test", "pirl_freq (pirl, freq views), 50% labels, seed 0")]).read_text()
    assert "Gallery: pirl_freq (pirl, freq views), 50% labels, seed 0" in page
    cases = re.findall(r"<div class='case'><p>(.*?)</p><div class='panels'>(.*?)</div></div>", page)
    assert len(cases) == 5  # best, median and worst 3 of 5 test cases, each once
    for caption, panels in cases:
        assert re.match(r"(best|median|worst): case_\d — Dice \d\.\d{3}", caption)
        assert re.findall(r"<figcaption>(.*?)</figcaption>", panels) == ["image", "ground truth", "prediction"]


def test_default_galleries_one_per_configuration(grid):
    page = build_report(grid).read_text()
    titles = re.findall(r"<h3>Gallery: (.*?)</h3>", page)
    assert sorted(titles) == ["pirl_freq_frac0.5, seed 0, evaluation test", "supervised_frac0.5, seed 0, evaluation test"]


def test_read_metrics_new_and_old_layouts(tmp_path):
    (tmp_path / "new.csv").write_text("epoch,step,seconds,train_loss,val_dice,lr\n0,2,1,0.9,0.1,1e-3\n1,4,1,0.8,,1e-3\n")
    s = read_metrics(tmp_path / "new.csv")
    assert s["train_loss"] == [(1, 0.9), (2, 0.8)] and s["val_dice"] == [(1, 0.1)] and "seconds" not in s
    # Lightning CSVLogger: step rows and epoch rows, *_epoch columns
    (tmp_path / "old.csv").write_text("epoch,step,train_loss_step,train_loss_epoch,val_dice\n"
                                      "0,0,1.0,,\n0,1,,0.95,0.2\n1,3,,0.85,nan\n")
    s = read_metrics(tmp_path / "old.csv")
    assert s["train_loss"] == [(1, 0.95), (2, 0.85)] and s["val_dice"] == [(1, 0.2)] and "train_loss_step" not in s
