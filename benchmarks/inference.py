"""Inference speed of the shipped segmentation models, end to end and in process: torch vs ONNX Runtime, 1 vs 2
threads, quiet and with a second CPU-bound process running; wall and CPU time, peak memory.

For each shipped segmentation model (``sonokit models --pretrained``) and each image size (256, 512 px; a gray
PNG of noise, since speed does not depend on content):

* **end to end**: ``sonokit segment IMAGE --checkpoint CKPT --backend B --threads T`` as a fresh process (start-up,
  reading, prediction, writing the mask and overlay), wall and CPU time (the child's ``ru_utime + ru_stime``) and
  its peak resident memory (``ru_maxrss``, from ``os.wait4``); the shipped weights are first written as a
  checkpoint in a temporary folder and its ONNX graph made once (not timed: the first use exports and checks it).

Cases run in alternating order within each round; each is measured quiet and again while a second process spins
on one core (``--load``: a Python busy loop), so "inference time with a second CPU-bound process <= 2x quiet" can
be read off. Writes ``benchmarks/results/inference.{json,md}``.

    python benchmarks/inference.py [--rounds 5] [--sizes 256 512]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
OUT = ROOT / "benchmarks" / "results"
SONOKIT = [str(Path(sys.executable).with_name("sonokit"))]


def busy(stop_after: float) -> subprocess.Popen:
    """A second CPU-bound process: one core spinning in Python for ``stop_after`` seconds."""
    code = f"import time\nt=time.time()\nwhile time.time()-t<{stop_after}: sum(i*i for i in range(10000))"
    return subprocess.Popen([sys.executable, "-c", code])


def checkpoint_of(name: str, work: Path) -> Path:
    """A training-checkpoint stand-in for a shipped model: the CLI's --checkpoint path reads .ckpt files, so
    the shipped safetensors become one (weights as float32) in ``work`` (made once)."""
    import torch

    from sonokit.zoo import entry, weights

    e = entry(name)
    ck = work / f"{name}.ckpt"
    if not ck.exists():
        sd, meta = weights(e)
        hp = {"task": "segment", "model": meta["sonokit_model"], "model_kwargs": json.loads(meta["model_kwargs"]),
              "image_size": int(meta["image_size"]), "data": {"classes": json.loads(meta.get("classes") or "null")}}
        torch.save({"state_dict": {f"model.{k}": v for k, v in sd.items()}, "hyper_parameters": hp}, ck)
    return ck


def end_to_end(ck: Path, image: Path, out: Path, backend: str, threads: int) -> dict:
    """One ``sonokit segment`` process: wall time, its CPU time and peak resident memory (``os.wait4``)."""
    t0 = time.perf_counter()
    p = subprocess.Popen([*SONOKIT, "segment", str(image), "--checkpoint", str(ck), "--out", str(out), "--backend",
                          backend, "--threads", str(threads)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise RuntimeError(err[-2000:])
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_mib": ru.ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    a = ap.parse_args()
    import numpy as np
    from PIL import Image

    from sonokit.inference import Segmenter
    from sonokit.provenance import commit, machine
    from sonokit.reports.tables import markdown_table
    from sonokit.zoo import entries

    work = Path(tempfile.mkdtemp(prefix="sonokit-inference-bench-"))
    load0 = os.getloadavg()
    rows = []
    for e in [e for e in entries() if e.task == "segment"]:
        ck = checkpoint_of(e.name, work)
        Segmenter.from_checkpoint(ck, backend="onnx", threads=1)  # export + check once, not timed
        for size in a.sizes:
            img = work / f"scan{size}.png"
            Image.fromarray((np.random.default_rng(size).random((size, size)) * 255).astype(np.uint8)).save(img)
            cases = [(b, t, ld) for b in ("torch", "onnx") for t in (1, 2) for ld in (False, True)]
            res = {c: [] for c in cases}
            for r in range(a.rounds):
                for c in (cases if r % 2 == 0 else cases[::-1]):
                    b, t, ld = c
                    spin = busy(60) if ld else None
                    try:
                        res[c].append(end_to_end(ck, img, work / "out", b, t))
                    finally:
                        if spin is not None:
                            spin.kill()
                            spin.wait()
            for (b, t, ld), ms in res.items():
                med = lambda k: float(np.median([m[k] for m in ms]))  # noqa: E731
                rows.append({"model": e.name, "size": size, "backend": b, "threads": t, "second_process": ld,
                             "wall_s": med("wall_s"), "cpu_s": med("cpu_s"),
                             "peak_mib": max(m["peak_mib"] for m in ms), "rounds": a.rounds})
    doc = {"benchmark": "inference", "load_average_at_start": load0, "commit": commit(), "machine": machine(),
           "rows": rows}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "inference.json").write_text(json.dumps(doc, indent=1))
    table = [[r["model"], r["size"], r["backend"], r["threads"], "yes" if r["second_process"] else "no",
              f"{r['wall_s']:.2f}", f"{r['cpu_s']:.2f}", f"{r['peak_mib']:.0f}"] for r in rows]
    md = ["# Inference speed (end to end: `sonokit segment` of one PNG as a fresh process)\n",
          f"`python benchmarks/inference.py --rounds {a.rounds}`; median of the rounds, cases in alternating order; "
          f"load average at start {load0[0]:.1f}. Peak memory: the largest child resident size of the case.\n",
          markdown_table(["model", "px", "backend", "threads", "second CPU-bound process", "wall s", "CPU s",
                          "peak MiB"], table),
          f"\nCommit {doc['commit']}; machine {doc['machine']}.\n"]
    (OUT / "inference.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
