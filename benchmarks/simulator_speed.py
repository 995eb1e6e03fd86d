"""Speed of sonokit's physical B-mode simulator, and of pymust (Python MUST) on a smaller case.

Cases (sonokit; ``--repeat`` rounds after one warm-up, the order of the cases reversed every other round;
median wall time (``time.perf_counter``) and median CPU time of the process (``time.process_time``)):
1. 301 x 201 (depth x lateral) linear image, 30 x 20 mm, 60,000 unit scatterers (~12 per resolution cell);
2. a 256 x 256 phantom frame (``phantom_sample(size=256)``: echogenicity map, lesion, 0.2 mm pixels);
3. a 256 x 256 convex (fan) image from a uniform echogenicity map.

When pymust is installed: pymust's SIMUS (one plane wave, L11-5v) + RF->IQ + DAS on a small phantom
(121 x 61 image, scatterers uniform in 6 x 6 mm) at several scatterer counts N (``--must-scatterers``),
``--must-rounds`` rounds after one warm-up call, the order of the counts reversed every other round; sonokit
on the same phantoms. pymust's time is fitted as ``t = a + b * N`` (least squares over every timed call, wall
and CPU separately) and the fit, not a proportion, is extrapolated to 60k scatterers and compared with
sonokit's 301x201 / 60k time. The extrapolation keeps the small case's image (121 x 61 pixels, 3 mm of depth):
it scales the scatterer count only.

Usage:
  python benchmarks/simulator_speed.py [--repeat 7] [--must-rounds 3] [--must-scatterers 250 2000 8000 24000]
                                       [--out benchmarks/results] [--quick]
``--quick`` (trials): 3 sonokit rounds, pymust at 250 / 1000 / 4000 scatterers, 2 rounds (~20 s of pymust).
Writes DIR/simulator_speed.{json,md} (DIR = ``--out``). Thread counts (``OMP_NUM_THREADS`` etc. and
``torch.get_num_threads()``) are recorded; set ``OMP_NUM_THREADS`` before starting Python to change them.
pymust's ``simus`` is sensitive to the BLAS thread count: on a 2-core machine busy with other jobs it ran ~6x
slower with the default threads than with ``OMP_NUM_THREADS=1`` (CPU time ~ wall time in both), so compare runs
only at the same setting; ``OMP_NUM_THREADS=1`` is the reference setting.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
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

N_TARGET = 60_000
SMALL_SHAPE, SMALL_DEPTH, SMALL_WIDTH = (121, 61), (10.5, 13.5), 3.0
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def median_time(fn, repeat: int) -> float:
    """Median wall time of ``repeat`` calls after one warm-up (kept for ``benchmarks/enhance.py``)."""
    fn()  # warm-up
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def timed(fn):
    """(wall s, process CPU s, result) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def time_rounds(cases: dict, rounds: int, warmup=None, log=None) -> tuple[dict, dict]:
    """Time every case once per round, in the listed order on even rounds and reversed on odd ones.

    ``warmup``: the keys to call once, untimed, first (default: all). Returns ({key: {"wall": [..], "cpu": [..]}},
    {key: result of its last call})."""
    keys = list(cases)
    for k in keys if warmup is None else warmup:
        cases[k]()
    samples = {k: {"wall": [], "cpu": []} for k in keys}
    last = {}
    for r in range(rounds):
        for k in keys if r % 2 == 0 else keys[::-1]:
            w, c, last[k] = timed(cases[k])
            samples[k]["wall"].append(w)
            samples[k]["cpu"].append(c)
            if log:
                log(f"  round {r + 1}/{rounds} {k}: wall {w:.4g} s, cpu {c:.4g} s")
    return samples, last


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


def linear_fit(n: np.ndarray, t: np.ndarray, x0: float) -> dict:
    """Least-squares ``t = a + b * n`` (numpy.polyfit, deg 1), its residuals, R² and the prediction at ``x0``
    with its standard error (the fit's; it assumes the line holds out there, which the data cannot show)."""
    n, t = np.asarray(n, float), np.asarray(t, float)
    b, a = np.polyfit(n, t, 1)
    res = t - (a + b * n)
    ss_res, ss_tot = float(res @ res), float(((t - t.mean()) ** 2).sum())
    dof = len(n) - 2
    sxx = float(((n - n.mean()) ** 2).sum())
    out = {"a_s": float(a), "b_s_per_scatterer": float(b), "r2": 1 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
           "points": len(n), "residuals_s": res.tolist(), "rms_residual_s": float(np.sqrt(ss_res / len(n))),
           "max_abs_rel_residual": float(np.max(np.abs(res) / t)), "x0": x0, "predicted_s": float(a + b * x0)}
    if dof > 0:
        s2 = ss_res / dof
        out.update({"se_a_s": float(np.sqrt(s2 * (1 / len(n) + n.mean() ** 2 / sxx))),
                    "se_b_s_per_scatterer": float(np.sqrt(s2 / sxx)),
                    "predicted_se_s": float(np.sqrt(s2 * (1 / len(n) + (x0 - n.mean()) ** 2 / sxx)))})
    return out


def thread_info() -> dict:
    info = {k: os.environ.get(k) for k in THREAD_VARS}
    info["os_cpu_count"] = os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        info["cpus_available"] = len(os.sched_getaffinity(0))
    try:
        import torch

        info["torch_num_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch_num_threads"] = None
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [{k: p.get(k) for k in ("user_api", "internal_api", "num_threads")}
                               for p in threadpool_info()]
    except ImportError:
        pass
    return info


def version(pkg: str) -> str | None:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def fmt(v) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=None, help="sonokit timing rounds (default 7; --quick: 3)")
    ap.add_argument("--must-rounds", type=int, default=None, help="pymust timing rounds (default 3; --quick: 2)")
    ap.add_argument("--must-scatterers", type=int, nargs="+", default=None,
                    help="pymust scatterer counts, at least 3 (default 250 2000 8000 24000; --quick: 250 1000 4000)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="output folder")
    ap.add_argument("--quick", action="store_true", help="fewer rounds and smaller counts, for trial runs")
    ap.add_argument("--no-pymust", action="store_true", help="skip the pymust comparison")
    args = ap.parse_args()
    repeat = args.repeat or (3 if args.quick else 7)
    must_rounds = args.must_rounds or (2 if args.quick else 3)
    counts = sorted(set(args.must_scatterers or ([250, 1000, 4000] if args.quick else [250, 2000, 8000, 24000])))
    if len(counts) < 3:
        ap.error("--must-scatterers needs at least three distinct counts (the fit has a fixed term)")
    t_start = time.perf_counter()
    log = lambda m: print(m, flush=True)  # noqa: E731

    have_must = importlib.util.find_spec("pymust") is not None and not args.no_pymust
    if importlib.util.find_spec("pymust") is None:
        log("pymust not installed: skipping the comparison (pip install pymust)")

    # --- sonokit: the three main cases and the small case at every count, timed in alternating rounds
    pos60k = uniform(N_TARGET, (-10.6, 10.6), (-0.4, 30.4))
    small = {n: uniform(n, (-3.0, 3.0), (9.0, 15.0), seed=1) for n in counts}
    f0_mhz, c_m_s = 7.6, 1540.0  # pymust's L11-5v (fc, c); taken from pymust.getparam when it is installed
    if have_must:
        import pymust

        p = pymust.getparam("L11-5v")
        f0_mhz, c_m_s = p.fc / 1e6, float(p.c) if p.c is not None else 1540.0  # pymust: c defaults to 1540
    small_kw = dict(f0_mhz=f0_mhz, c_m_s=c_m_s, depth_range_mm=SMALL_DEPTH, width_mm=SMALL_WIDTH,
                    image_shape=SMALL_SHAPE)
    small_case = f"L11-5v plane wave, {SMALL_SHAPE[0]}x{SMALL_SHAPE[1]}"
    main_cases = {
        "linear 301x201, 60k scatterers": lambda: simulate_ultrasound(positions_mm=pos60k),
        "phantom_sample 256x256 (0.2 mm px)": lambda: phantom_sample(0, size=256),
        "convex 256x256, 60 deg, 60 mm": lambda: simulate_ultrasound(
            echogenicity=np.ones((2, 2)), geometry="convex", depth_range_mm=(0, 60), image_shape=(256, 256), seed=0),
    }
    sono_cases = dict(main_cases)
    for n in counts:
        sono_cases[f"{small_case}, {n} scatterers"] = (lambda pos: lambda: simulate_ultrasound(
            positions_mm=pos, **small_kw))(small[n])
    log(f"sonokit: {len(sono_cases)} cases x {repeat} rounds")
    sono, _ = time_rounds(sono_cases, repeat)

    def row(sim: str, case: str, n, s: dict, snr) -> dict:
        w, c = float(np.median(s["wall"])), float(np.median(s["cpu"]))
        return {"simulator": sim, "case": case, "scatterers": n, "wall_s": w, "cpu_s": c, "cpu_over_wall": c / w,
                "images_per_s": 1 / w, "runs": len(s["wall"]), "speckle_snr": snr}

    rows = []
    snr60k = speckle_snr(simulate_ultrasound(positions_mm=pos60k).envelope[20:-20, 20:-20])
    for k in main_cases:
        rows.append(row("sonokit", k, N_TARGET if k.startswith("linear") else None, sono[k],
                        snr60k if k.startswith("linear") else None))
    sono_small_rows = [row("sonokit", f"{small_case}, {n} scatterers", n, sono[f"{small_case}, {n} scatterers"],
                           speckle_snr(simulate_ultrasound(positions_mm=small[n], **small_kw).envelope))
                       for n in counts]

    # --- pymust: the small case at every count, alternating ascending / descending counts between rounds
    must_rows, fits, extrap, must_samples = [], None, None, None
    if have_must:
        runs = {n: pymust_case(small[n], SMALL_SHAPE, SMALL_DEPTH, SMALL_WIDTH)[0] for n in counts}
        log(f"pymust: N = {counts} x {must_rounds} rounds (+1 warm-up call at N = {counts[0]})")
        must_samples, last = time_rounds(runs, must_rounds, warmup=[counts[0]], log=log)
        for n in counts:
            must_rows.append(row("pymust (simus+rf2iq+dasmtx)", f"{small_case}, {n} scatterers", n,
                                 must_samples[n], speckle_snr(last[n])))
        ns = np.concatenate([[n] * must_rounds for n in counts])
        fits = {"pymust": {}, "sonokit_small": {}}
        for kind in ("wall", "cpu"):
            fits["pymust"][kind] = linear_fit(ns, np.concatenate([must_samples[n][kind] for n in counts]), N_TARGET)
            fits["sonokit_small"][kind] = linear_fit(
                np.concatenate([[n] * repeat for n in counts]),
                np.concatenate([sono[f"{small_case}, {n} scatterers"][kind] for n in counts]), N_TARGET)
        s60 = rows[0]
        extrap = {"n": N_TARGET, "fit_range": [counts[0], counts[-1]], "times_max_fitted": N_TARGET / counts[-1],
                  "pymust_wall_s": fits["pymust"]["wall"]["predicted_s"],
                  "pymust_cpu_s": fits["pymust"]["cpu"]["predicted_s"],
                  "sonokit_301x201_60k_wall_s": s60["wall_s"], "sonokit_301x201_60k_cpu_s": s60["cpu_s"]}
        extrap["ratio_wall"] = extrap["pymust_wall_s"] / s60["wall_s"]
        extrap["ratio_cpu"] = extrap["pymust_cpu_s"] / s60["cpu_s"]
        extrap["proportional_ratio_wall_from_largest_n"] = (must_rows[-1]["wall_s"] * N_TARGET / counts[-1]
                                                            / s60["wall_s"])
        extrap["same_case_ratio_wall"] = {n: m["wall_s"] / s["wall_s"] for n, m, s in
                                          zip(counts, must_rows, sono_small_rows)}
        extrap["same_case_ratio_cpu"] = {n: m["cpu_s"] / s["cpu_s"] for n, m, s in
                                         zip(counts, must_rows, sono_small_rows)}
    all_rows = rows + [r for pair in zip(must_rows or [None] * len(counts), sono_small_rows) for r in pair if r]

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "src", "benchmarks/simulator_speed.py"],
                                    cwd=ROOT, capture_output=True, text=True).stdout.strip())
    except OSError:
        commit, dirty = "", None
    threads = thread_info()
    meta = {"python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor(),
            "numpy": np.__version__, "scipy": version("scipy"), "pymust": version("pymust") if have_must else None,
            "commit": commit, "uncommitted_changes": dirty, "repeat": repeat, "must_rounds": must_rounds,
            "must_scatterers": counts, "quick": args.quick, "threads": threads,
            "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "total_seconds": time.perf_counter() - t_start}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    samples = {"sonokit": sono, "pymust": {str(n): v for n, v in (must_samples or {}).items()}}
    (out / "simulator_speed.json").write_text(json.dumps(
        {"meta": meta, "rows": all_rows, "fits": fits, "pymust_60k": extrap, "samples": samples}, indent=2))

    header = ["simulator", "case", "scatterers", "wall_s", "cpu_s", "cpu_over_wall", "images_per_s", "runs",
              "speckle_snr"]
    table = [[fmt(r[k]) for k in header] for r in all_rows]
    thr = ", ".join(f"{k}={threads[k] if threads[k] is not None else 'unset'}" for k in THREAD_VARS)
    md = ["# Simulator speed", "",
          f"CPU ({meta['machine']}, {threads['os_cpu_count']} cores, {threads.get('cpus_available')} available), "
          f"Python {meta['python']}, numpy {meta['numpy']}, scipy {meta['scipy']}, pymust {meta['pymust']}, "
          f"commit {commit}{' + uncommitted changes' if dirty else ''}"
          f"{'; --quick trial' if args.quick else ''}.", "",
          f"Threads: {thr}; torch.get_num_threads() = {threads['torch_num_threads']} (the simulators are numpy/"
          "scipy; torch's count is given for comparison with the other benchmarks). Load average at the end: "
          + (", ".join(f"{x:.2f}" for x in meta["load_average_at_end"]) if meta["load_average_at_end"] else "n/a")
          + ".", "",
          f"Wall time is `time.perf_counter`, CPU time `time.process_time` (all threads of the process); each is "
          f"the median of `runs` timed calls after one warm-up (sonokit: {repeat} rounds; pymust: {must_rounds} "
          f"rounds, one warm-up call at N = {counts[0]}), with the order of the cases reversed every other round.",
          "", markdown_table(header, table)]
    if extrap:
        lo, hi = extrap["fit_range"]
        md += ["## pymust extrapolated to 60k scatterers", "",
               f"pymust's time on the {small_case} case is fitted as t = a + b·N by least squares (numpy.polyfit, "
               f"deg 1) over all {fits['pymust']['wall']['points']} timed calls at N = "
               f"{', '.join(str(n) for n in counts)}, wall and CPU time separately:", ""]
        ft = []
        for who, key in (("pymust", "pymust"), ("sonokit (same case)", "sonokit_small")):
            for kind in ("wall", "cpu"):
                f = fits[key][kind]
                def pm(k: str, scale: float = 1.0, f=f) -> str:
                    return f" ± {f[k] * scale:.2g}" if k in f else ""

                ft.append([who, kind, f"{f['a_s']:.4g}{pm('se_a_s')}",
                           f"{f['b_s_per_scatterer'] * 1e3:.4g}{pm('se_b_s_per_scatterer', 1e3)}",
                           f"{f['r2']:.5f}", f"{f['rms_residual_s']:.3g}", f"{100 * f['max_abs_rel_residual']:.1f}%",
                           f"{f['predicted_s']:.4g}{pm('predicted_se_s')}"])
        md += [markdown_table(["simulator", "time", "a (s)", "b (ms / scatterer)", "R²", "RMS residual (s)",
                               "max |residual| / t", "fit at 60k (s)"], ft)]
        curv = []
        for kind in ("wall", "cpu"):
            f = fits["pymust"][kind]
            dev = [(r["scatterers"], r[kind + "_s"] / (f["a_s"] + f["b_s_per_scatterer"] * r["scatterers"]) - 1)
                   for r in must_rows]
            curv.append(f"{kind}: " + ", ".join(f"N = {n}: {100 * d:+.1f}%" for n, d in dev))
        md += ["pymust's median time against the fit at each N (a + sign at both ends and - in the middle suggests "
               "the time grows faster than linearly, and the 60k value is then an underestimate): "
               + "; ".join(curv) + ".", ""]
        md += [f"**This is an extrapolation** from a fit over N in [{lo}, {hi}]: 60,000 scatterers is "
               f"{extrap['times_max_fitted']:.1f}x the largest fitted count, and the line is assumed to hold out "
               "there (the ± are the fit's standard errors, which assume it does). It also keeps the small case's "
               f"{SMALL_SHAPE[0]}x{SMALL_SHAPE[1]} image (3 x 3 mm): only the scatterer count is scaled, not the "
               "301x201 / 30 x 20 mm image sonokit is timed on, so pymust's fixed cost a is that of the small image.",
               "",
               f"pymust at 60k (fit): {extrap['pymust_wall_s']:.1f} s wall, {extrap['pymust_cpu_s']:.1f} s CPU; "
               f"sonokit's 301x201 / 60k image: {extrap['sonokit_301x201_60k_wall_s']:.4g} s wall, "
               f"{extrap['sonokit_301x201_60k_cpu_s']:.4g} s CPU. Ratio: **{extrap['ratio_wall']:.0f}x in wall "
               f"time, {extrap['ratio_cpu']:.0f}x in CPU time**. (Scaling the largest count, N = {hi}, in "
               f"proportion, fixed cost included, would give {extrap['proportional_ratio_wall_from_largest_n']:.0f}x "
               "wall.)", "",
               "pymust / sonokit on the same small case: "
               + "; ".join(f"N = {n}: {extrap['same_case_ratio_wall'][n]:.0f}x wall, "
                           f"{extrap['same_case_ratio_cpu'][n]:.0f}x CPU" for n in counts) + ".", "",
               "pymust models the full array physics (element directivity, diffraction, plane-wave transmit, DAS "
               "beamforming); sonokit uses a separable, shift-invariant Gaussian PSF.", ""]
    env = "".join(f"{k}={threads[k]} " for k in THREAD_VARS if threads[k] is not None)
    cmd = (f"{env}python benchmarks/simulator_speed.py{' --quick' if args.quick else ''} --repeat {repeat} "
           f"--must-rounds {must_rounds} --must-scatterers {' '.join(map(str, counts))}")
    md.append(f"Regenerate: `{cmd}` (this run: {meta['total_seconds']:.0f} s).")
    (out / "simulator_speed.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
