"""Supervised Res-UNet on BUSI tumour images at 20/50/100% labels over seeds, on the committed split.

Usage:
    python benchmarks/busi_supervised.py --preset cpu            # the CPU grid (about an hour on 2 cores)
    python benchmarks/busi_supervised.py --preset paper          # ResNet50 at 256 px, for a GPU

Normal images are EXCLUDED (``data.classes: [benign, malignant]``): the metric is lesion segmentation.
Each run trains on the seed's nested label subset of the fixed train split, picks its checkpoint on the
val split (best val Dice), and is scored once on the held-out test split at original image size.
Runs already finished (their test JSON exists) are not repeated, so the script resumes after a stop.
Writes ``benchmarks/results/busi_supervised.{json,md}``: one row per (seed, fraction, metric).
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sonokit.config import load_config  # noqa: E402
from sonokit.data.splits import split_ids  # noqa: E402
from sonokit.experiments import train_and_score  # noqa: E402
from sonokit.reports.tables import fmt_mean_std, markdown_table  # noqa: E402

PRESETS = {
    # Epochs per label fraction: smaller subsets get more epochs so that every run sees a similar number of
    # images (~9-11k on the CPU preset, about 10 CPU-minutes each), and validation (which picks best.ckpt)
    # runs about 25 times per run whatever the fraction.
    "cpu": {"config": "configs/busi_resunet18_cpu.yaml", "epochs": {0.2: 100, 0.5: 40, 1.0: 25},
            "val_every": {0.2: 4, 0.5: 2, 1.0: 1}},
    "paper": {"config": "configs/busi_resunet50_paper.yaml", "epochs": {0.2: 300, 0.5: 150, 1.0: 100},
              "val_every": {0.2: 3, 0.5: 2, 1.0: 1}},
}
METRICS = ("dice", "iou", "hd95", "precision", "recall")


def commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True).strip()
    except Exception:
        return "unknown"


def test_set(cfg) -> dict:
    """The in-domain held-out test split of the config's dataset, as an evaluation set."""
    from sonokit.data import open_dataset

    reader = open_dataset(cfg.data.root, "busi")
    ids = split_ids(cfg.data.split, "test", reader, cfg.data.classes)
    return {"name": "test", "root": cfg.data.root, "format": "busi", "ids": ids}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.2, 0.5, 1.0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "busi"))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "bench_busi"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "busi_supervised"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    args = ap.parse_args()
    preset = PRESETS[args.preset]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, runs_meta, rev = [], [], commit()
    for seed in args.seeds:  # seed-major: every finished seed gives a complete column of fractions
        for frac in args.fractions:
            run_dir = Path(args.runs) / args.preset / f"frac{frac:g}_seed{seed}"
            cfg = load_config(ROOT / preset["config"], [
                f"data.root={args.data}", f"data.split={ROOT / 'splits' / 'busi_v1.json'}", f"data.fraction={frac}",
                f"seed={seed}", f"out_dir={run_dir}", f"optim.epochs={preset['epochs'][frac]}",
                f"trainer.check_val_every_n_epoch={preset['val_every'][frac]}",
                "trainer.progress=lines", *args.overrides])
            ev = train_and_score(cfg, run_dir, eval_sets=[test_set(cfg)],
                                 device="cuda" if torch.cuda.is_available() else "cpu")["test"]
            tj = run_dir / "eval" / "time.json"
            secs = json.loads(tj.read_text())["seconds"] if tj.exists() else math.nan
            n_train = json.loads((run_dir / "data.json").read_text())["train"]
            runs_meta.append({"seed": seed, "fraction": frac, "train_images": n_train, "test_images": ev["n"],
                              "epochs": preset["epochs"][frac], "seconds": round(secs, 1)})
            for m in METRICS:
                rows.append({"method": "supervised", "model": cfg.model["name"], "dataset": "busi", "split": "test",
                             "fraction": frac, "seed": seed, "metric": m, "value": ev["aggregate"][m]["mean"],
                             "commit": rev})
            print(f"seed {seed} fraction {frac:g}: test Dice {ev['aggregate']['dice']['mean']:.4f} "
                  f"({n_train} train images, {secs:.0f}s)", flush=True)
            write(out, args, preset, rows, runs_meta)


def write(out: Path, args, preset: dict, rows: list[dict], runs_meta: list[dict]) -> None:
    table = []
    for frac in args.fractions:
        cells = [f"{100 * frac:g}%"]
        seeds = sorted({r["seed"] for r in rows if r["fraction"] == frac})
        for m in ("dice", "iou", "hd95"):
            v = np.array([r["value"] for r in rows if r["fraction"] == frac and r["metric"] == m])
            cells.append(fmt_mean_std(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, n=v.size)
                         if v.size else "n/a")
        cells.append(len(seeds))
        table.append(cells)
    doc = {"benchmark": "busi_supervised", "preset": args.preset, "config": preset["config"],
           "epochs": {f"{k:g}": v for k, v in preset["epochs"].items()}, "split": "splits/busi_v1.json",
           "classes": ["benign", "malignant"], "normal_images": "excluded",
           "machine": {"platform": platform.platform(), "torch": torch.__version__,
                       "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                       "threads": torch.get_num_threads()},
           "runs": runs_meta, "rows": rows}
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    md = [f"# BUSI supervised Res-UNet ({args.preset} preset)\n",
          f"Config `{preset['config']}`; split `splits/busi_v1.json` (de-duplicated, fixed); benign + malignant "
          "images only (normal excluded); checkpoint chosen on val Dice, scored once on the held-out test split "
          "at original image size. Mean ± std over seeds of the per-run mean per-image metric. HD95 in pixels "
          "(BUSI has no pixel spacing). Regenerate: `python benchmarks/busi_supervised.py --preset "
          f"{args.preset}`.\n",
          markdown_table(["labels", "Dice", "IoU", "HD95 (px)", "seeds"], table),
          "\n## Runs\n",
          markdown_table(["seed", "fraction", "train images", "test images", "epochs", "seconds"],
                         [[r["seed"], r["fraction"], r["train_images"], r["test_images"], r["epochs"], r["seconds"]]
                          for r in runs_meta]),
          f"\nMachine: {doc['machine']['platform']}, torch {doc['machine']['torch']}, {doc['machine']['device']}, "
          f"{doc['machine']['threads']} threads.\n"]
    out.with_suffix(".md").write_text("\n".join(md))


if __name__ == "__main__":
    main()
