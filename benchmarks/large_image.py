"""Peak memory and time of `sonokit segment` and `sonokit enhance` on one large image (default 8000 x 8000, 8-bit
gray PNG), each command run in its own process under ``/usr/bin/time -v`` (peak resident set size, wall, user
and system seconds).

1. Trains two small models on a simulated phantom unless checkpoints are given: segmentation
   ``configs/demo_phantom_cpu.yaml`` (resunet_resnet18, 96 px input) for 1 epoch, enhancement
   ``configs/enhance_phantom_cpu.yaml`` (dncnn_small) for 1 epoch. Their weights do not matter here, only
   their size and compute.
2. Writes the large image (speckle-like texture with a dark elliptic lesion) and a 512 x 512 one.
3. Runs each command on the 512 x 512 image (the baseline: Python, torch and the model) and on the large
   image; ``above_baseline_mb`` is the difference of peak RSS, the memory the image itself costs.
4. With ``--before-src DIR`` (a ``src`` folder of an older checkout, e.g. from
   ``git archive HEAD~1 src | tar -x -C /tmp/old``) the same commands also run with that code (PYTHONPATH).

Usage: python benchmarks/large_image.py [--size 8000] [--threads 1] [--before-src /tmp/old/src]
Writes benchmarks/results/large_image.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ENHANCE_TILE = ["--tile", "512", "--overlap", "32"]  # exact for dncnn_small (receptive-field radius 10 <= 16)


def sonokit(args: list[str], *, src: str | None = None, threads: int = 1, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if src:
        env["PYTHONPATH"] = src
    cmd = [sys.executable, "-c", "from sonokit.cli import main; main()", *args]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if check and p.returncode:
        raise SystemExit(f"sonokit {' '.join(args)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return p


def timed(args: list[str], *, src: str | None, threads: int) -> dict:
    """Run ``sonokit ARGS`` under /usr/bin/time -v; peak RSS (MB), wall / user / system seconds, exit code."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if src:
            env["PYTHONPATH"] = src
        cmd = ["/usr/bin/time", "-v", "-o", t.name, sys.executable, "-c", "from sonokit.cli import main; main()", *args]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        text = Path(t.name).read_text()

    def field(name: str) -> str:  # lines read "\tName (unit): value"
        line = next((ln for ln in text.splitlines() if ln.strip().startswith(name)), None)
        return line.rsplit(": ", 1)[1].strip() if line else "nan"

    wall = [float(x) for x in field("Elapsed (wall clock) time").split(":")]
    return {"peak_rss_mb": round(int(field("Maximum resident set size")) / 1024, 1),
            "wall_s": round(sum(v * 60 ** i for i, v in enumerate(reversed(wall))), 1),
            "user_s": float(field("User time")), "sys_s": float(field("System time")),
            "exit_code": p.returncode, "last_line": (p.stdout.strip().splitlines() or [""])[-1][:200],
            **({"stderr_tail": p.stderr[-500:]} if p.returncode else {})}


def large_image(path: Path, h: int, w: int, seed: int = 0) -> Path:
    """An (h, w) uint8 speckle-like image with a dark ellipse, written as PNG (built in row chunks)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = np.empty((h, w), np.uint8)
    xx = np.arange(w)[None, :]
    for r in range(0, h, 500):
        yy = np.arange(r, min(h, r + 500))[:, None]
        speckle = rng.rayleigh(0.35, (len(yy), w)) * (0.8 - 0.4 * yy / h)  # darker with depth
        lesion = ((yy - 0.45 * h) / (0.12 * h)) ** 2 + ((xx - 0.5 * w) / (0.2 * w)) ** 2 < 1
        img[r:r + len(yy)] = np.clip(np.where(lesion, 0.25, 1.0) * speckle * 255, 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


def train_models(work: Path, threads: int) -> dict[str, Path]:
    ph, split = work / "phantom", work / "split.json"
    sonokit(["simulate", "phantom", "--out", str(ph), "--n", "24", "--size", "96"], threads=threads)
    sonokit(["data", "split", str(ph), "--out", str(split), "--seeds", "0"], threads=threads)
    data = ["--set", f"data.root={ph}", "--set", f"data.split={split}", "--set", "optim.epochs=1",
            "--set", "trainer.progress=none"]
    sonokit(["train", "segment", "--config", str(ROOT / "configs/demo_phantom_cpu.yaml"), "--out", str(work / "seg"),
             *data], threads=threads)
    sonokit(["train", "enhance", "--config", str(ROOT / "configs/enhance_phantom_cpu.yaml"), "--out",
             str(work / "enh"), *data, "--set", "data.patches_per_epoch=32"], threads=threads)
    return {"segment": work / "seg/checkpoints/last.ckpt", "enhance": work / "enh/checkpoints/last.ckpt"}


def commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        return sha + ("+uncommitted" if dirty else "")
    except OSError:
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8000, help="side of the square large image in pixels")
    ap.add_argument("--threads", type=int, default=1, help="OMP/MKL threads of each command")
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--segment-checkpoint", type=Path, default=None)
    ap.add_argument("--enhance-checkpoint", type=Path, default=None)
    ap.add_argument("--before-src", default=None, help="also run with the code in this src folder (PYTHONPATH)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["segment", "enhance"], help="commands not to run")
    ap.add_argument("--render-only", action="store_true", help="only rewrite the .md from the existing .json")
    a = ap.parse_args()
    if a.render_only:
        render(json.loads((RESULTS / "large_image.json").read_text()))
        return
    work = a.work or Path(tempfile.mkdtemp(prefix="sonokit_large_"))
    work.mkdir(parents=True, exist_ok=True)
    ckpt = {"segment": a.segment_checkpoint, "enhance": a.enhance_checkpoint}
    if None in ckpt.values():
        trained = train_models(work, a.threads)
        ckpt = {k: v or trained[k] for k, v in ckpt.items()}
    big = large_image(work / f"large_{a.size}.png", a.size, a.size)
    small = large_image(work / "small_512.png", 512, 512, seed=1)
    from sonokit.inference.checkpoint import read_task_checkpoint

    models = {}
    for task, path in ckpt.items():
        hp = read_task_checkpoint(path)["hyper_parameters"]
        models[task] = hp["model"] + (f", {hp['image_size']} px input" if task == "segment" else "")
    rows = []
    for version, src in [("after", None)] + ([("before", a.before_src)] if a.before_src else []):
        for task in ("segment", "enhance"):
            if task in a.skip:
                continue
            extra = ENHANCE_TILE if task == "enhance" else []
            runs = {}
            for which, img in (("baseline", small), ("large", big)):
                out = work / f"out_{version}_{task}_{which}"
                runs[which] = timed([task, str(img), "--checkpoint", str(ckpt[task]), "--out", str(out), *extra],
                                    src=src, threads=a.threads)
                print(version, task, which, runs[which], flush=True)
            rows.append({"version": version, "command": f"sonokit {task}" + (" " + " ".join(extra) if extra else ""),
                         "image": f"{a.size}x{a.size} 8-bit gray PNG", "model": models[task], "threads": a.threads,
                         **runs["large"], "baseline_peak_rss_mb": runs["baseline"]["peak_rss_mb"],
                         "above_baseline_mb": round(runs["large"]["peak_rss_mb"] - runs["baseline"]["peak_rss_mb"], 1),
                         "commit": commit() if version == "after" else f"code in {src}"})
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"rows": rows, "cpus": os.cpu_count(), "size": a.size}
    (RESULTS / "large_image.json").write_text(json.dumps(data, indent=1) + "\n")
    render(data)


NOTES = """Notes: `before` is the code of commit 3504b25 (for these commands the same as ebfdf7c: whole-image letterbox,
full-size float32 probability map and float overlay; enhance: float64 copies when writing). `after`: segment reads the image as uint8,
area-averages it in row chunks to the model's input size and upsamples the logits in row chunks (images above
4096x4096 px); enhance rounds to uint8 in row chunks and clamps in place. The enhance rows' system time is
page faults: every layer output of a 512-px tile (33.5 MB) is above glibc's largest dynamic mmap threshold
(32 MB), so each is a fresh mmap; running with `MALLOC_MMAP_THRESHOLD_=1000000000` removed nearly all of it in a
1000x1000 check (6.4 s -> 0.1 s system time, 13.2 s -> 9.1 s wall)."""


def render(data: dict) -> None:
    """benchmarks/results/large_image.md from the rows of large_image.json."""
    rows, size = data["rows"], data["size"]
    head = ["version", "command", "image", "model", "threads", "peak RSS MB", "baseline MB (512x512)",
            "above baseline MB", "wall s", "user s", "sys s", "exit"]
    lines = ["# Large image: peak memory and time", "",
             f"One {size}x{size} 8-bit PNG per command, each run in a fresh process under `/usr/bin/time -v` "
             f"on a {data['cpus']}-CPU machine; baseline: the same command on a 512x512 image (Python, torch "
             "and the model). Written by `benchmarks/large_image.py`.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(str(x) for x in (r["version"], f"`{r['command']}`", r["image"], r["model"],
                                                         r["threads"], r["peak_rss_mb"], r["baseline_peak_rss_mb"],
                                                         r["above_baseline_mb"], r["wall_s"], r["user_s"], r["sys_s"],
                                                         r["exit_code"])) + " |")
    lines += ["", NOTES]
    (RESULTS / "large_image.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
