"""Speed of sonokit's physical B-mode simulator, and of pymust (Python MUST) on a smaller case.

Cases (sonokit, median of ``--repeat`` runs after one warm-up):
1. 301 x 201 (depth x lateral) linear image, 30 x 20 mm, 60,000 unit scatterers (~12 per resolution cell);
2. a 256 x 256 phantom frame (``phantom_sample(size=256)``: echogenicity map, lesion, 0.2 mm pixels);
3. a 256 x 256 convex (fan) image from a uniform echogenicity map.
When pymust is installed: pymust's SIMUS (one plane wave, L11-5v) + RF->IQ + DAS on a small phantom
(``--must-scatterers``, default 1000, 6 x 6 mm; its cost grows linearly with the scatterers, so the full
60k case would take minutes) and sonokit on the same phantom; the ratio is per image on that case, and per
scatterer extrapolated to the 60k case.

Usage: python benchmarks/simulator_speed.py [--repeat 5] [--must-scatterers 1000]
Writes benchmarks/results/simulator_speed.{json,md}.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sonokit.metrics.quality import speckle_snr  # noqa: E402
from sonokit.physics import phantom_sample, simulate_ultrasound  # noqa: E402
from sonokit.reports.tables import markdown_table  # noqa: E402


def median_time(fn, repeat: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def uniform(n: int, x_range, z_range, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(*x_range, n), rng.uniform(*z_range, n)], axis=1)


def pymust_case(pos_mm: np.ndarray, shape: tuple[int, int], depth: tuple[float, float], width: float):
    import pymust

    param = pymust.getparam("L11-5v")
    delays = pymust.txdelay(param, 0)
    xi, zi = np.meshgrid(np.linspace(-width / 2, width / 2, shape[1]) * 1e-3,
                         np.linspace(*depth, shape[0]) * 1e-3)

    def run() -> np.ndarray:
        rf = pymust.simus(pos_mm[:, 0] * 1e-3, pos_mm[:, 1] * 1e-3, np.ones(len(pos_mm)), delays, param)[0]
        iq = pymust.rf2iq(rf, param)
        m = pymust.dasmtx(1j * np.array(iq.shape), xi, zi, delays, param)
        return np.abs((m @ iq.flatten(order="F")).reshape(xi.shape, order="F"))

    return run, param


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--must-scatterers", type=int, default=1000)
    args = ap.parse_args()
    rows = []

    pos60k = uniform(60_000, (-10.6, 10.6), (-0.4, 30.4))
    sim = simulate_ultrasound(positions_mm=pos60k)
    t = median_time(lambda: simulate_ultrasound(positions_mm=pos60k), args.repeat)
    rows.append({"simulator": "sonokit", "case": "linear 301x201, 60k scatterers", "scatterers": 60_000,
                 "seconds": t, "images_per_s": 1 / t,
                 "speckle_snr": speckle_snr(sim.envelope[20:-20, 20:-20])})
    t = median_time(lambda: phantom_sample(0, size=256), args.repeat)
    rows.append({"simulator": "sonokit", "case": "phantom_sample 256x256 (0.2 mm px)", "scatterers": None,
                 "seconds": t, "images_per_s": 1 / t, "speckle_snr": None})
    t = median_time(lambda: simulate_ultrasound(echogenicity=np.ones((2, 2)), geometry="convex",
                                                depth_range_mm=(0, 60), image_shape=(256, 256), seed=0),
                    args.repeat)
    rows.append({"simulator": "sonokit", "case": "convex 256x256, 60 deg, 60 mm", "scatterers": None,
                 "seconds": t, "images_per_s": 1 / t, "speckle_snr": None})

    have_must = importlib.util.find_spec("pymust") is not None
    if not have_must:
        print("pymust not installed: skipping the comparison (pip install pymust)")
    ratio = None
    if have_must:
        n = args.must_scatterers
        pos = uniform(n, (-3.0, 3.0), (9.0, 15.0), seed=1)
        shape, depth, width = (121, 61), (10.5, 13.5), 3.0
        run, param = pymust_case(pos, shape, depth, width)
        t0 = time.perf_counter()
        env_m = run()
        t_m = time.perf_counter() - t0  # one run: it is slow
        kw = dict(positions_mm=pos, f0_mhz=param.fc / 1e6, c_m_s=param.c, depth_range_mm=depth, width_mm=width,
                  image_shape=shape)
        t_s = median_time(lambda: simulate_ultrasound(**kw), args.repeat)
        case = f"L11-5v plane wave, {shape[0]}x{shape[1]}, {n} scatterers"
        rows.append({"simulator": "pymust (simus+rf2iq+dasmtx)", "case": case, "scatterers": n, "seconds": t_m,
                     "images_per_s": 1 / t_m, "speckle_snr": speckle_snr(env_m)})
        rows.append({"simulator": "sonokit", "case": case, "scatterers": n, "seconds": t_s, "images_per_s": 1 / t_s,
                     "speckle_snr": speckle_snr(simulate_ultrasound(**kw).envelope)})
        ratio = {"same_case": t_m / t_s,
                 "pymust_60k_extrapolated_s": t_m * 60_000 / n,
                 "per_scatterer_vs_sonokit_60k": (t_m * 60_000 / n) / rows[0]["seconds"]}

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = ""
    meta = {"python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor(),
            "numpy": np.__version__, "commit": commit, "repeat": args.repeat}
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "simulator_speed.json").write_text(json.dumps({"meta": meta, "rows": rows, "pymust_ratio": ratio},
                                                         indent=2))
    header = list(rows[0])
    table = [[f"{r[k]:.4g}" if isinstance(r[k], float) else ("" if r[k] is None else r[k]) for k in header]
             for r in rows]
    md = ["# Simulator speed", "", f"CPU, {meta['python']}, numpy {meta['numpy']}, commit {commit}; "
          f"median of {args.repeat} runs (pymust: one run).", "", markdown_table(header, table), ""]
    if ratio:
        md.append(f"pymust / sonokit on the same small case: {ratio['same_case']:.0f}x slower; pymust extrapolated "
                  f"to 60k scatterers: {ratio['pymust_60k_extrapolated_s']:.0f} s "
                  f"({ratio['per_scatterer_vs_sonokit_60k']:.0f}x sonokit's 301x201/60k time).")
        md.append("")
        md.append("pymust models the full array physics (element directivity, diffraction, plane-wave transmit, DAS "
                  "beamforming); sonokit uses a separable, shift-invariant Gaussian PSF.")
    (out / "simulator_speed.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
