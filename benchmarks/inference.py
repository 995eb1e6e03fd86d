"""Inference speed of the shipped models (``sonokit models --pretrained``), end to end and in process: torch vs
ONNX Runtime, 1 vs 2 threads (and the default), quiet and with a second CPU-bound process; wall and CPU time,
peak memory.

* **end to end**: ``sonokit segment scan.png --task NAME`` / ``sonokit enhance scan.png --model NAME`` as a fresh
  process at 512 px (start-up, reading, prediction, writing the outputs): wall time, the child's CPU time
  (``ru_utime + ru_stime``, from ``os.wait4``) and its peak resident memory (GNU ``time -f %M``). Each model's ONNX
  graph is made once before timing (a private ``SONOKIT_CACHE``), as a user's first call would.
* **in process**: one image through the loaded model (segmentation: letterbox, network, resize back, threshold;
  enhancement: the whole image), median of ``--reps`` calls after a warm-up, wall and CPU time
  (``time.process_time``), at 256 and 512 px.

Two phases, each with its cases in alternating order over ``--rounds`` rounds: **quiet**, then **loaded**, while a
second process spins on one core (a Python busy loop, started ``--settle`` seconds before the phase so the load
average - which the default thread count reads - has risen). Writes ``benchmarks/results/inference.{json,md}``
with the issue's targets evaluated on the numbers.

    python benchmarks/inference.py [--rounds 3] [--reps 5]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
OUT = ROOT / "benchmarks" / "results"
SONOKIT = str(Path(sys.executable).with_name("sonokit"))


def busy() -> subprocess.Popen:
    """A second CPU-bound process: one core spinning in Python until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: sum(i*i for i in range(10000))"])


def image(work: Path, size: int) -> Path:
    from PIL import Image

    p = work / f"scan{size}.png"
    if not p.exists():  # a smooth blob on speckle-like noise: content does not change the speed
        rng = np.random.default_rng(size)
        yy, xx = np.mgrid[:size, :size] / size
        im = 0.5 * np.exp(-((yy - 0.5) ** 2 + (xx - 0.5) ** 2) / 0.02) + 0.4 * rng.random((size, size))
        Image.fromarray((np.clip(im, 0, 1) * 255).astype(np.uint8)).save(p)
    return p


def end_to_end(e, img: Path, out: Path, backend: str, threads: int | None, env: dict) -> dict:
    """One CLI process: wall time, its CPU time and peak resident memory (``os.wait4``)."""
    cmd = [SONOKIT, "segment", str(img), "--task", e.name] if e.task == "segment" else \
        [SONOKIT, "enhance", str(img), "--model", e.name]
    cmd += ["--out", str(out), "--backend", backend] + (["--threads", str(threads)] if threads else [])
    rss = out.parent / "maxrss.txt"
    # GNU time reports the command's own peak resident size (a child forked from this process would inherit
    # this process's peak in ru_maxrss); it adds about a millisecond
    cmd = ["/usr/bin/time", "-f", "%M", "-o", str(rss), *cmd]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.read().decode(errors='replace')[-2000:]}")
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_mib": int(rss.read_text().split()[-1]) / 1024}


def predictors(e, backend: str, threads: int):
    """(callable on a (H, W) float image, name) for the shipped model ``e`` as the CLI runs it."""
    import torch

    torch.set_num_threads(threads)
    from sonokit import zoo

    if e.task == "segment":
        if backend == "onnx":
            seg = zoo.lite(e.name, threads=threads)
            assert seg is not None, "graph not cached"
        else:
            seg = zoo.load(e.name, threads=threads)
        return lambda x: seg.segment(x)
    from sonokit.enhance import enhance_image

    net, _ = zoo.load_enhancer(e.name, backend=backend, threads=threads)
    return lambda x: enhance_image(net, x, tile=1024)


def in_process(fn, x: np.ndarray, reps: int) -> dict:
    import torch

    with torch.no_grad():
        fn(x)  # warm-up
        walls, cpus = [], []
        for _ in range(reps):
            w0, c0 = time.perf_counter(), time.process_time()
            fn(x)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
    return {"wall_s": float(np.median(walls)), "cpu_s": float(np.median(cpus))}


def phase(models, work: Path, env: dict, a, loaded: bool, log) -> list[dict]:
    from PIL import Image

    e2e = [(e, b, t) for e in models for b in ("torch", "onnx") for t in (1, 2, None)]
    inproc = [(e, b, t, s) for e in models for b in ("torch", "onnx") for t in (1, 2) for s in (256, 512)]
    raw: dict = {}
    for r in range(a.rounds):
        order = e2e if r % 2 == 0 else e2e[::-1]
        for e, b, t in order:
            m = end_to_end(e, image(work, 512), work / "out", b, t, env)
            raw.setdefault(("e2e", e.name, b, t, 512), []).append(m)
        log(f"{'loaded' if loaded else 'quiet'} round {r + 1}/{a.rounds}: end to end done")
        order = inproc if r % 2 == 0 else inproc[::-1]
        last = None
        for e, b, t, s in order:
            if last != (e.name, b, t):
                fn, last = predictors(e, b, t), (e.name, b, t)
            x = np.asarray(Image.open(image(work, s)), dtype=np.float32) / 255
            raw.setdefault(("in-process", e.name, b, t, s), []).append(in_process(fn, x, a.reps))
    rows = []
    for (kind, name, b, t, s), ms in raw.items():
        med = lambda k: float(np.median([m[k] for m in ms]))  # noqa: E731
        rows.append({"kind": kind, "model": name, "size": s, "backend": b, "threads": t or "default",
                     "second_process": loaded, "wall_s": med("wall_s"), "cpu_s": med("cpu_s"),
                     "peak_mib": max((m.get("peak_mib", 0) for m in ms), default=0) or None,
                     "rounds": [m["wall_s"] for m in ms]})
    return rows


def find(rows, **kw) -> dict:
    return next(r for r in rows if all(r[k] == v for k, v in kw.items()))


def targets(rows, models) -> list[str]:
    out = []
    seg = find(rows, kind="e2e", model="busi-lesion", backend="onnx", threads="default", second_process=False)
    out.append(f"- `sonokit segment` of a 512x512 PNG end to end with the shipped breast model (ONNX, default "
               f"threads), quiet: {seg['wall_s']:.2f} s wall (target <= 1.5 s: {'met' if seg['wall_s'] <= 1.5 else 'NOT met'}).")
    for e in models:
        for t in (1, 2):
            tt = find(rows, kind="in-process", model=e.name, backend="torch", threads=t, size=512, second_process=False)
            oo = find(rows, kind="in-process", model=e.name, backend="onnx", threads=t, size=512, second_process=False)
            sp = tt["wall_s"] / oo["wall_s"]
            out.append(f"- ONNX vs eager, {e.name}, 512 px in process, {t} thread(s), quiet: {sp:.2f}x "
                       f"(target >= 1.5x: {'met' if sp >= 1.5 else 'NOT met'}).")
    for e in models:
        for b in ("onnx", "torch"):
            q = find(rows, kind="e2e", model=e.name, backend=b, threads="default", second_process=False)
            ld = find(rows, kind="e2e", model=e.name, backend=b, threads="default", second_process=True)
            ratio = ld["wall_s"] / q["wall_s"]
            out.append(f"- With a second CPU-bound process, {e.name} end to end ({b}, default threads): "
                       f"{ratio:.2f}x the quiet time (target <= 2x: {'met' if ratio <= 2 else 'NOT met'}).")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--settle", type=float, default=60.0, help="seconds the second process runs before the loaded phase")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sonokit-inference-bench-"))
    os.environ["SONOKIT_CACHE"] = str(work / "cache")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    import torch

    from sonokit import zoo
    from sonokit.provenance import commit, machine
    from sonokit.reports.tables import markdown_table

    models = zoo.entries()
    for e in models:  # the first use: export the graph and check it against torch (not timed)
        end_to_end(e, image(work, 256), work / "out", "onnx", 1, env)
    load0 = os.getloadavg()
    rows = phase(models, work, env, a, False, print)
    spin = busy()
    try:
        time.sleep(a.settle)
        load1 = os.getloadavg()
        rows += phase(models, work, env, a, True, print)
    finally:
        spin.kill()
        spin.wait()
    doc = {"benchmark": "inference", "commit": commit(), "machine": machine(), "cores": os.cpu_count(),
           "load_average_quiet_start": load0, "load_average_loaded_start": load1, "rounds": a.rounds,
           "reps": a.reps, "torch": torch.__version__, "rows": rows}
    try:
        import onnxruntime

        doc["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "inference.json").write_text(json.dumps(doc, indent=1))
    tgt = targets(rows, models)

    def table(kind: str) -> str:
        sel = [r for r in rows if r["kind"] == kind]
        return markdown_table(
            ["model", "px", "backend", "threads", "second CPU-bound process", "wall s", "CPU s"]
            + (["peak MiB"] if kind == "e2e" else []),
            [[r["model"], r["size"], r["backend"], r["threads"], "yes" if r["second_process"] else "no",
              f"{r['wall_s']:.3f}", f"{r['cpu_s']:.3f}"] + ([f"{r['peak_mib']:.0f}"] if kind == "e2e" else [])
             for r in sel])

    md = ["# Inference speed of the shipped models\n",
          f"`python benchmarks/inference.py --rounds {a.rounds} --reps {a.reps}`: {len(models)} shipped models; "
          f"{os.cpu_count()} cores; medians over rounds, cases in alternating order within each phase. Quiet phase "
          f"started at load average {load0[0]:.2f}; the loaded phase ran beside a second process spinning on one core "
          f"(load average {load1[0]:.2f} at its start). 'default' threads: the CLI's default (cores minus the "
          "1-minute load average, at least 1; back-to-back runs raise that average, so here the default is often 1 "
          "thread even in the quiet phase). torch " + torch.__version__
          + (f", onnxruntime {doc.get('onnxruntime')}" if doc.get("onnxruntime") else "") + ".\n",
          "## Targets\n", *tgt, "",
          "## End to end (`sonokit segment|enhance` of one 512x512 PNG as a fresh process)\n",
          "Wall time from process start to exit (start-up, reading, prediction, writing mask + overlay or the "
          "enhanced image); CPU time of the child; peak resident memory of the child.\n", table("e2e"), "",
          "## In process (one image through the loaded model, median of the reps)\n", table("in-process"), "",
          f"Commit {doc['commit']}; machine {doc['machine']}.\n"]
    (a.out / "inference.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
