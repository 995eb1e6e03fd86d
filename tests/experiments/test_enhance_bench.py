"""`sonokit experiment enhance-bench` on a tiny phantom: noise study, PSF study, plug-and-play; resumable."""
import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from sonokit.cli import app
from sonokit.config import load_config
from sonokit.errors import ConfigError
from sonokit.experiments import EnhanceBench, EnhanceBenchConfig
from sonokit.experiments.enhance_bench import Method, NoiseSetting, apply_at_scale, degrade_frame, psf_measures, psf_phantom
from sonokit.experiments.enhance_bench.cache import ResultCache, file_spec

from ..conftest import make_phantom, ok

runner = CliRunner()


@pytest.fixture(scope="module")
def bench_setup(tmp_path_factory):
    d = make_phantom(tmp_path_factory.mktemp("bench"), n=16, size=64)
    data = {"root": str(d / "ph"), "split": str(d / "split.json")}
    (d / "enh.yaml").write_text(yaml.safe_dump({
        "data": {**data, "format": "folder", "patch_size": 24, "batch_size": 4, "patches_per_epoch": 8},
        "model": {"name": "dncnn_small"}, "target": {"kind": "original"}, "optim": {"epochs": 1}}))
    (d / "seg.yaml").write_text(yaml.safe_dump({
        "data": {**data, "image_size": 48, "batch_size": 8},
        "model": {"name": "resunet_resnet10t", "decoder_channels": [16, 16, 16, 8, 8]}, "optim": {"epochs": 1}}))
    (d / "bench.yaml").write_text(yaml.safe_dump({
        "name": "tiny", "out_dir": str(d / "out"),
        "frames": {**data, "format": "folder", "n": 3, "max_side": 48},
        "enhancers": [{"name": "dncnn_small", "config": str(d / "enh.yaml")}],
        "classical": ["median", "nllr"],
        "hybrids": [{"name": "guided", "guide": "dncnn_small", "guide_weight": 0.5}],
        "noise": [{"kind": "gaussian", "level": 25}, {"kind": "speckle", "level": 1}],
        "psf": {"blur_sigmas": [0, 1.5], "image_size": 96},
        "segmentation": [{"name": "phantom", "config": str(d / "seg.yaml"), "max_images": 3}]}))
    return d


def test_enhance_bench_end_to_end_and_resume(bench_setup):
    d = bench_setup
    ok(runner.invoke(app, ["experiment", "enhance-bench", "--config", str(d / "bench.yaml")]))
    out = d / "out"
    res = json.loads((out / "results.json").read_text())
    rows = res["rows"]
    assert {r["study"] for r in rows} == {"noise", "psf", "plug"}
    noise = [r for r in rows if r["study"] == "noise" and r["metric"] == "psnr"]
    assert {r["method"] for r in noise} == {"input", "dncnn_small", "median", "nllr", "guided"}
    assert {r["kind"] for r in noise if r["method"] == "guided"} == {"hybrid"}
    assert {r["setting"] for r in noise} == {"gaussian σ=25/255", "speckle m=1"}
    assert all(r["n"] == 3 and np.isfinite(r["mean"]) for r in noise)
    # the classical denoisers do remove Gaussian noise at σ = 25/255 (PSNR above the noisy input's)
    val = {(r["setting"], r["method"]): r["mean"] for r in noise}
    assert val[("gaussian σ=25/255", "median")] > val[("gaussian σ=25/255", "input")]
    assert val[("gaussian σ=25/255", "nllr")] > val[("gaussian σ=25/255", "input")]
    assert val[("gaussian σ=25/255", "guided")] > val[("gaussian σ=25/255", "input")]
    psf = {(r["setting"], r["method"], r["metric"]): r["mean"] for r in rows if r["study"] == "psf"}
    # extra blur widens the points and flattens the edge of the degraded input
    assert psf[("blur σ=1.5 px", "input", "lateral_fwhm_mm")] > psf[("blur σ=0 px", "input", "lateral_fwhm_mm")]
    assert psf[("blur σ=1.5 px", "input", "edge_gradient_per_mm")] < psf[("blur σ=0 px", "input", "edge_gradient_per_mm")]
    plug = [r for r in rows if r["study"] == "plug" and r["metric"] == "dice"]
    assert {r["method"] for r in plug} == {"raw", "raw_resampled", "dncnn_small", "nllr", "guided"}
    assert all(r["n"] == 3 for r in plug)
    assert all(r["computed"]["commit"] for r in rows if r["study"] == "noise")  # provenance of every cached result
    md = (out / "results.md").read_text()
    assert "Noise study" in md and "PSF study" in md and "Plug-and-play" in md and "Dice change vs raw" in md
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64") >= 3  # noise examples, PSF, plug-and-play pairs
    # rerunning resumes: nothing is trained or recomputed, the same rows come back
    ck = out / "models" / "dncnn_small" / "checkpoints" / "best.ckpt"
    stamp = ck.stat().st_mtime
    ok(runner.invoke(app, ["experiment", "enhance-bench", "--config", str(d / "bench.yaml")]))
    assert ck.stat().st_mtime == stamp
    assert json.loads((out / "results.json").read_text())["rows"] == rows
    assert (out / "report.html").read_text().count("data:image/png;base64") >= 3


def test_enhance_bench_cache_follows_the_settings(bench_setup):
    """A changed input recomputes the result it decides; a model trained from another config is refused."""
    d = bench_setup
    out = d / "out"
    ok(runner.invoke(app, ["experiment", "enhance-bench", "--config", str(d / "bench.yaml")]))  # all cached
    f = out / "noise" / "gaussian_25_median.json"
    before = json.loads(f.read_text())
    # another noise seed: the median row is recomputed on other noise (and so differs)
    ok(runner.invoke(app, ["experiment", "enhance-bench", "--config", str(d / "bench.yaml"), "--set", "seed=5",
                           "--set", "segmentation=[]", "--set", "psf.enabled=false"]))
    after = json.loads(f.read_text())
    assert after["spec"]["seed"] != before["spec"]["seed"] and after["result"]["psnr"] != before["result"]["psnr"]
    r = runner.invoke(app, ["experiment", "enhance-bench", "--config", str(d / "bench.yaml"), "--set",
                            f"enhancers=[{{name: dncnn_small, config: {d / 'enh.yaml'}, set: [optim.lr=0.01]}}]"])
    assert isinstance(r.exception, ConfigError) and "remove the folder" in str(r.exception)


def test_enhance_bench_bad_config(bench_setup, tmp_path):
    d = bench_setup
    with pytest.raises(ConfigError, match="noise kind"):
        EnhanceBench(load_config(d / "bench.yaml", ["noise=[{kind: salt, level: 1}]"], cls=EnhanceBenchConfig))
    with pytest.raises(ConfigError, match="Nakagami"):
        EnhanceBench(load_config(d / "bench.yaml", ["noise=[{kind: speckle, level: 0.2}]"], cls=EnhanceBenchConfig))
    with pytest.raises(ConfigError, match="reserved"):
        EnhanceBench(load_config(d / "bench.yaml", ["classical=[median]", "hybrids=[]", "enhancers=[{name: raw, checkpoint: x}]"],
                                 cls=EnhanceBenchConfig))
    with pytest.raises(ConfigError, match="plug_methods"):
        EnhanceBench(load_config(d / "bench.yaml", ["plug_methods=[bm4d]"], cls=EnhanceBenchConfig))
    with pytest.raises(ConfigError, match="blur_sigmas"):
        EnhanceBench(load_config(d / "bench.yaml", ["psf.blur_sigmas=[-1]"], cls=EnhanceBenchConfig))
    with pytest.raises(ConfigError, match="unique"):
        EnhanceBench(load_config(d / "bench.yaml", ["classical=[median, median]"], cls=EnhanceBenchConfig))
    with pytest.raises(ConfigError, match="guide 'drunet' is not among the enhancers"):
        EnhanceBench(load_config(d / "bench.yaml", ["hybrids=[{name: g, guide: drunet}]"], cls=EnhanceBenchConfig))
    with pytest.raises(ConfigError, match="guide_weight must be in"):
        EnhanceBench(load_config(d / "bench.yaml", ["hybrids=[{name: g, guide: dncnn_small, guide_weight: 1.5}]"],
                                 cls=EnhanceBenchConfig))
    with pytest.raises(Exception, match="did you mean|unknown"):
        EnhanceBench(load_config(d / "bench.yaml", ["classical=[medain]"], cls=EnhanceBenchConfig))
    b = EnhanceBench(load_config(d / "bench.yaml", [f"out_dir={tmp_path}", "hybrids=[]",
                                                     "enhancers=[{name: x, checkpoint: nope.ckpt}]"],
                                 cls=EnhanceBenchConfig))
    with pytest.raises(ConfigError, match="nope.ckpt"):
        b.methods()


def test_degrade_frame_and_scale():
    ref = np.full((40, 50), 0.5, np.float32)
    g = degrade_frame(ref, NoiseSetting("gaussian", 25), 3, dynamic_range_db=50)
    assert np.array_equal(g, degrade_frame(ref, NoiseSetting("gaussian", 25), 3, dynamic_range_db=50))
    assert abs(float((g - ref).std()) - 25 / 255) < 0.01
    s = degrade_frame(ref, NoiseSetting("speckle", 1), 3, dynamic_range_db=50)
    assert s.shape == ref.shape and 0 <= s.min() and s.max() <= 1 and s.std() > 0.05
    # a method is run at its own scale and the result comes back at the input's size
    seen = []
    m = Method("probe", "classical", lambda im: (seen.append(im.shape), im)[1], max_side=25)
    y = apply_at_scale(m, np.random.default_rng(0).random((40, 50)).astype(np.float32))
    assert seen == [(20, 25)] and y.shape == (40, 50)


def test_psf_phantom_measures_follow_the_blur():
    ph = psf_phantom(128, seed=1)
    m = psf_measures(ph["image"], ph, dynamic_range_db=50)
    assert len(ph["peaks"]) == 9
    # the points are resolved at roughly the simulated pulse-echo resolution (0.23 mm axial, 0.6 mm lateral)
    assert len(m["axial_fwhm_mm"]) == len(m["lateral_fwhm_mm"]) == 9
    assert 0.15 < np.mean(m["axial_fwhm_mm"]) < 0.6 and 0.4 < np.mean(m["lateral_fwhm_mm"]) < 1.0
    assert m["edge_gradient_per_mm"] > 0


def test_result_cache_recomputes_only_when_the_spec_changes(tmp_path):
    calls = []

    def compute() -> dict:
        calls.append(1)
        return {"v": len(calls)}

    f = tmp_path / "r.json"
    cache = ResultCache(commit="abc1234", device="cpu", log=lambda *_: None)
    assert cache.get(f, {"a": (1, 2), "p": tmp_path}, compute) == {"v": 1}
    assert cache.last["commit"] == "abc1234" and cache.last["device"] == "cpu" and cache.last["threads"] >= 1
    # the spec is compared as JSON gives it back (tuples -> lists, paths -> str): the same inputs hit the cache,
    # and the provenance is that of the run that computed the result
    again = ResultCache(commit="other", device="cuda", log=lambda *_: None)
    assert again.get(f, {"a": [1, 2], "p": str(tmp_path)}, compute) == {"v": 1} and calls == [1]
    assert again.last["commit"] == "abc1234"
    # a changed input recomputes and replaces the stored result
    assert again.get(f, {"a": [1, 3], "p": str(tmp_path)}, compute) == {"v": 2}
    doc = json.loads(f.read_text())
    assert doc["spec"]["a"] == [1, 3] and doc["computed"]["commit"] == "other"
    assert file_spec(tmp_path / "missing.ckpt") == {"path": str(tmp_path / "missing.ckpt"), "mtime": None}
    assert file_spec(f)["mtime"] == round(f.stat().st_mtime, 3)
