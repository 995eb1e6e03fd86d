"""Run folders written by hand (config.yaml, run.json, data.json, metrics.csv, eval json, predicted masks), as
``sonokit train`` / ``evaluate`` write them, so report tests need no training."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

SEG_COLS = ("epoch", "step", "seconds", "train_loss", "val_loss", "val_dice", "lr")


def disc(size: int | tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    """A bool (H, W) disc; ``size`` is H = W or (H, W)."""
    h, w = (size, size) if isinstance(size, int) else size
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2


def make_dataset(root: Path, n: int = 5, size: int = 32) -> tuple[Path, list[str]]:
    """A folder dataset (images/, masks/) of ``n`` discs; returns its root and ids."""
    rng = np.random.default_rng(0)
    ids = [f"case_{i}" for i in range(n)]
    for i, sid in enumerate(ids):
        m = disc(size, size / 2, size / 2 + i - n // 2, size / 5)
        img = (rng.random((size, size)) * 100 + 100).astype(np.uint8)
        img[m] //= 3
        for sub, arr in (("images", img), ("masks", (m * 255).astype(np.uint8))):
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / sub / f"{sid}.png")
    return root, ids


def write_split(path: Path, ids: list[str]) -> str:
    from sonokit.data.splits import content_hash

    split = {"version": 2, "train": ids[:1], "val": ids[1:2], "test": ids[2:]}
    split["hash"] = content_hash(split)
    path.write_text(json.dumps(split))
    return split["hash"]


def make_run(run: Path, *, task: str, name: str, seed: int = 0, epochs: int = 3, cols=SEG_COLS,
             data_root: Path | None = None, split: Path | None = None, split_hash: str | None = None,
             scale: float = 1.0) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"task": task, "name": name, "seed": seed, "out_dir": str(run),
                                                     "data": {"root": str(data_root), "split": str(split)}}))
    (run / "run.json").write_text(json.dumps({"status": "finished", "task": task, "name": name, "seconds": 12.5,
                                              "epochs": epochs, "commit": "abc1234"}))
    (run / "data.json").write_text(json.dumps({"dataset": "folder", "root": str(data_root), "split": str(split),
                                               "split_hash": split_hash, "train": 1, "val": 1, "skipped": []}))
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for e in range(epochs):
            w.writerow([e, 2 * (e + 1), 0.5] + [round(scale * (1.0 - 0.1 * e + 0.01 * j), 4) for j in range(len(cols) - 3)])
    return run


def seg_eval(run: Path, ids: list[str], data_root: Path, split: Path, *, name: str = "test", warnings=()) -> dict:
    """eval/<name>.json with one row per id and predicted masks (discs shifted from the truth) in <name>_pred/."""
    rows = []
    for i, sid in enumerate(ids):
        truth = np.asarray(Image.open(data_root / "masks" / f"{sid}.png")) > 0
        pred = np.roll(truth, i, axis=1)
        (run / "eval" / f"{name}_pred").mkdir(parents=True, exist_ok=True)
        Image.fromarray((pred * 255).astype(np.uint8)).save(run / "eval" / f"{name}_pred" / f"{sid}.png")
        dice = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
        rows.append({"id": sid, "dice": float(dice), "iou": float(dice / (2 - dice)), "hd95": float(i),
                     "precision": float(dice), "recall": float(dice)})
    agg = {m: {"mean": float(np.mean([r[m] for r in rows])), "std": float(np.std([r[m] for r in rows]) + 0.01),
               "n": len(rows)} for m in ("dice", "iou", "hd95", "precision", "recall")}
    ev = {"name": name, "task": "segment", "checkpoint": str(run / "checkpoints" / "best.ckpt"), "part": "test",
          "split_file": str(split), "data_warnings": list(warnings), "data_root": str(data_root),
          "data_format": "folder", "n": len(rows), "skipped": [], "hd95_unit": "px", "hd95_undefined": 0,
          "aggregate": agg, "rows": rows}
    (run / "eval").mkdir(parents=True, exist_ok=True)
    (run / "eval" / f"{name}.json").write_text(json.dumps(ev))
    (run / "eval" / "time.json").write_text(json.dumps({"seconds": 3.0}))  # not an evaluation
    return ev


def cls_eval(run: Path, split: Path, data_root: Path) -> dict:
    ev = {"name": "test", "task": "classify", "checkpoint": str(run / "checkpoints" / "best.ckpt"), "part": "test",
          "split_file": str(split), "data_warnings": [], "data_root": str(data_root), "data_format": "folder",
          "classes": ["benign", "malignant", "normal"], "n": 9, "skipped": [],
          "metrics": {"accuracy": 0.667, "balanced_accuracy": 0.611, "auroc": 0.802},
          "recall": {"benign": 0.75, "malignant": 0.5, "normal": 0.6},
          "confusion": [[3, 1, 0], [1, 1, 0], [0, 1, 2]], "rows": []}
    (run / "eval").mkdir(parents=True, exist_ok=True)
    (run / "eval" / "test.json").write_text(json.dumps(ev))
    return ev


def tiny_split_overrides(d: Path, n: int = 8, size: int = 64) -> list[str]:
    """A folder dataset of ``n`` discs at ``size`` px under ``d`` with a 4 / 2 / rest split, as config overrides
    (``data.*``) that point a segmentation preset at it."""
    from sonokit.data.splits import SPLIT_FORMAT, save_split

    root, ids = make_dataset(d / "ds", n=n, size=size)
    split = save_split({"format": SPLIT_FORMAT, "version": 2, "train": ids[:4], "val": ids[4:6], "test": ids[6:]},
                       d / "split.json")
    return [f"data.root={root}", "data.format=folder", f"data.split={split}", "data.classes=null",
            f"data.image_size={size}", "data.batch_size=4"]
