"""The issue's quality-floor reference, run on sonokit's split: a plain U-Net/resnet18 from
segmentation_models_pytorch (smp), independent of sonokit's model, task and preprocessing.

The issue states the floor as "a plain U-Net/resnet18 trained from scratch at 128 px for ~22 epochs (AdamW 1e-3,
BCE + Dice, flips) reaches ~0.74 mean per-image test Dice with 100% of a 70/10/20 split, ~0.62 with 20%".
That number was measured on another split; this script trains exactly that recipe on the committed
``splits/busi_v1.json`` (benign + malignant, normal excluded) so the two are compared on the same test images:

* data: the seed's nested train subset of the committed split (sonokit's BUSI reader, masks merged by union);
* preprocessing: a plain (stretching) resize to 128 x 128, bilinear for images, nearest for masks;
* model: ``smp.Unet("resnet18", encoder_weights=None, in_channels=1, classes=1)`` (random init);
* loss: BCE-with-logits + smp's binary DiceLoss; AdamW(lr=1e-3, default weight decay), constant lr;
  batch 16; random horizontal and vertical flips; 22 epochs at 100% labels (epochs scaled so a 20% run
  sees the same number of images); the final model is scored (no checkpoint selection);
* scoring: predictions resized back to each image's original size, thresholded at 0.5 and scored with
  ``sonokit.metrics.segmentation_metrics`` (the same per-image Dice/IoU/HD95 as sonokit's benchmark).

Needs ``pip install segmentation-models-pytorch`` (``pip install -e '.[bench]'``).
Writes ``benchmarks/results/busi_reference_unet.{json,md}`` beside the sonokit preset's numbers from
``benchmarks/results/busi_supervised.json``. Finished runs are reused (``runs/bench_busi/reference``).

Usage: python benchmarks/busi_reference_unet.py [--seeds 0 1 2] [--fractions 1.0 0.2] [--collect]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from busi_supervised import commit  # noqa: E402
from sonokit.data import open_dataset  # noqa: E402
from sonokit.data.io import atomic_write  # noqa: E402
from sonokit.data.splits import (  # noqa: E402
    load_split,
    select_ids,
    split_ids,  # noqa: E402
)
from sonokit.metrics import aggregate, segmentation_metrics  # noqa: E402
from sonokit.reports.tables import fmt_mean_std, markdown_table  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "busi"
SPLIT = ROOT / "splits" / "busi_v1.json"
CLASSES = ("benign", "malignant")
SIZE, BATCH, LR, EPOCHS_100 = 128, 16, 1e-3, 22


def resize(x: np.ndarray, size: int, *, mask: bool) -> torch.Tensor:
    """(1, H, W) array -> (1, size, size) tensor by plain (aspect-changing) resize."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    if mask:
        return F.interpolate(t, size=(size, size), mode="nearest")[0]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]


def load(reader, ids: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    imgs, masks = [], []
    for i in ids:
        s = reader.get(i)
        imgs.append(resize(s.image, SIZE, mask=False))
        masks.append(resize(s.mask.astype(np.float32), SIZE, mask=True))
    return torch.stack(imgs), torch.stack(masks)  # (N, 1, S, S) each


def train(x: torch.Tensor, y: torch.Tensor, *, seed: int, epochs: int) -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    torch.manual_seed(seed)
    np.random.seed(seed)
    model = smp.Unet("resnet18", encoder_weights=None, in_channels=1, classes=1)
    dice = smp.losses.DiceLoss(mode="binary", from_logits=True)
    bce = torch.nn.BCEWithLogitsLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    model.train()
    for ep in range(epochs):
        perm = torch.randperm(n, generator=g)
        total = 0.0
        for k in range(0, n, BATCH):
            idx = perm[k : k + BATCH]
            xb, yb = x[idx].clone(), y[idx].clone()
            hf = torch.rand(len(idx), generator=g) < 0.5
            vf = torch.rand(len(idx), generator=g) < 0.5
            xb[hf], yb[hf] = xb[hf].flip(-1), yb[hf].flip(-1)
            xb[vf], yb[vf] = xb[vf].flip(-2), yb[vf].flip(-2)
            logits = model(xb)
            loss = bce(logits, yb) + dice(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        print(f"  epoch {ep + 1}/{epochs}: loss {total / n:.4f}", flush=True)
    return model.eval()


@torch.no_grad()
def score(model: torch.nn.Module, reader, ids: list[str]) -> dict:
    rows = []
    for i in ids:
        s = reader.get(i)
        h, w = s.mask.shape[-2:]
        prob = torch.sigmoid(model(resize(s.image, SIZE, mask=False)[None]))
        prob = F.interpolate(prob, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
        rows.append({"id": i, **segmentation_metrics(prob >= 0.5, s.mask[0])})
    return {"n": len(rows), "aggregate": aggregate(rows), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--fractions", type=float, nargs="+", default=[1.0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "bench_busi" / "reference"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "busi_reference_unet"))
    ap.add_argument("--collect", action="store_true", help="only collect finished runs; train nothing")
    args = ap.parse_args()
    reader = open_dataset(args.data, "busi")
    labels = {r.id: r.label for r in reader.records}
    split = load_split(SPLIT)
    test_ids = split_ids(SPLIT, "test", reader, list(CLASSES))
    runs_dir = Path(args.runs)
    results, rev = [], commit()
    for seed in args.seeds:
        for frac in args.fractions:
            path = runs_dir / f"frac{frac:g}_seed{seed}.json"
            if path.exists():
                res = json.loads(path.read_text())
            elif args.collect:
                continue
            else:
                train_ids = [i for i in select_ids(split, "train", seed=seed, fraction=frac) if labels[i] in CLASSES]
                epochs = round(EPOCHS_100 / frac)
                print(f"reference U-Net: seed {seed}, {frac:g} labels, {len(train_ids)} images, {epochs} epochs", flush=True)
                x, y = load(reader, train_ids)
                t0 = time.perf_counter()
                model = train(x, y, seed=seed, epochs=epochs)
                secs = time.perf_counter() - t0
                ev = score(model, reader, test_ids)
                res = {"seed": seed, "fraction": frac, "train_images": len(train_ids), "epochs": epochs,
                       "seconds": round(secs, 1), "test_images": ev["n"], "aggregate": ev["aggregate"],
                       "rows": ev["rows"], "commit": rev}
                atomic_write(path, lambda p: Path(p).write_text(json.dumps(res, indent=1, default=float)))
            print(f"seed {seed} fraction {frac:g}: reference test Dice {res['aggregate']['dice']['mean']:.4f}", flush=True)
            results.append(res)
    write(Path(args.out), results)


def paired(results: list[dict], sonokit_runs: Path) -> list[dict]:
    """Per-image paired comparison with sonokit's preset where its runs' per-image test rows exist
    (``runs/bench_busi/cpu/frac*_seed*/eval/test.json``, written by busi_supervised.py): each image's Dice is
    averaged over the seeds both have, then d = sonokit - reference per image, with a 95% bootstrap interval
    of the mean (10,000 resamples of the test images) and the Wilcoxon signed-rank p-value."""
    from scipy.stats import wilcoxon

    out = []
    for frac in sorted({r["fraction"] for r in results}, reverse=True):
        ref, son, seeds, son_runs = {}, {}, [], []
        for r in results:
            if r["fraction"] != frac:
                continue
            path = sonokit_runs / f"frac{frac:g}_seed{r['seed']}" / "eval" / "test.json"
            if not path.exists():
                continue
            seeds.append(r["seed"])
            ev = json.loads(path.read_text())
            son_runs.append(ev["aggregate"]["dice"]["mean"])
            for row in r["rows"]:
                ref.setdefault(row["id"], []).append(row["dice"])
            for row in ev["rows"]:
                son.setdefault(row["id"], []).append(row["dice"])
        ids = sorted(i for i in ref if i in son and len(ref[i]) == len(son[i]) == len(seeds))
        if not ids:
            continue
        ref_runs = [r["aggregate"]["dice"]["mean"] for r in results if r["fraction"] == frac and r["seed"] in seeds]
        d = np.array([np.mean(son[i]) - np.mean(ref[i]) for i in ids])
        rng = np.random.default_rng(0)
        boot = d[rng.integers(0, d.size, size=(10_000, d.size))].mean(1)
        out.append({"fraction": frac, "seeds": seeds, "images": len(ids), "sonokit_dice": float(np.mean(son_runs)),
                    "reference_dice": float(np.mean(ref_runs)), "mean_diff": float(d.mean()),
                    "ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))],
                    "sonokit_better": int((d > 0).sum()), "reference_better": int((d < 0).sum()),
                    "wilcoxon_p": float(wilcoxon(d).pvalue) if np.any(d != 0) else 1.0})
    return out


def write(out: Path, results: list[dict]) -> None:
    ours_path = ROOT / "benchmarks" / "results" / "busi_supervised.json"
    ours = json.loads(ours_path.read_text())["rows"] if ours_path.exists() else []
    table = []
    for frac in sorted({r["fraction"] for r in results}, reverse=True):
        cells = [f"{100 * frac:g}%"]
        for m in ("dice", "iou"):
            ref = np.array([r["aggregate"][m]["mean"] for r in results if r["fraction"] == frac])
            son = np.array([r["value"] for r in ours if r["fraction"] == frac and r["metric"] == m])
            for v in (ref, son):
                cells.append(fmt_mean_std(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, n=v.size)
                             if v.size else "n/a")
        cells.append(len([r for r in results if r["fraction"] == frac]))
        table.append(cells)
    doc = {"benchmark": "busi_reference_unet", "split": "splits/busi_v1.json", "classes": list(CLASSES),
           "recipe": {"model": "smp.Unet(resnet18, encoder_weights=None)", "size": SIZE, "resize": "plain (stretch)",
                      "batch": BATCH, "lr": LR, "optimizer": "AdamW", "schedule": "constant",
                      "loss": "BCE + Dice", "augment": "hflip + vflip", "epochs_at_100": EPOCHS_100,
                      "checkpoint": "final"},
           "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
           "runs": [{k: v for k, v in r.items() if k != "rows"} for r in results],
           "paired": (pairs := paired(results, ROOT / "runs" / "bench_busi" / "cpu")),
           "per_image": {f"frac{r['fraction']:g}_seed{r['seed']}": r["rows"] for r in results}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1, default=float))
    md = ["# The issue's reference recipe on sonokit's BUSI split\n",
          "A plain smp U-Net/resnet18 (random init, plain 128 x 128 resize, AdamW 1e-3 constant, BCE + Dice, "
          "h/v flips, 22 epochs at 100% labels, final model) trained on the committed `splits/busi_v1.json` "
          "(benign + malignant) and scored on the same 130 test images as sonokit's CPU preset "
          "(`benchmarks/results/busi_supervised.json`), per image at original size, with sonokit's metrics. "
          "Mean ± std over seeds of the per-run mean per-image metric. Regenerate: "
          "`python benchmarks/busi_reference_unet.py`.\n",
          markdown_table(["labels", "reference Dice", "sonokit preset Dice", "reference IoU", "sonokit preset IoU",
                          "reference seeds"], table),
          "\n## Paired, per test image\n",
          "sonokit's runs as found in `runs/bench_busi/cpu` (run folders are not committed, so these are whichever "
          "runs were made on this machine, possibly a rerun of the committed table's); "
          "each test image's Dice averaged over the seeds both were run with, then d = sonokit − reference; "
          "95% bootstrap interval of the mean d over test images; Wilcoxon signed-rank test.\n",
          markdown_table(["labels", "seeds", "images", "sonokit Dice (these runs)", "reference Dice", "mean d (Dice)",
                          "95% CI", "sonokit better / worse", "Wilcoxon p"],
                         [[f"{100 * p['fraction']:g}%", " ".join(map(str, p["seeds"])), p["images"],
                           f"{p['sonokit_dice']:.4f}", f"{p['reference_dice']:.4f}",
                           f"{p['mean_diff']:+.4f}", f"[{p['ci95'][0]:+.4f}, {p['ci95'][1]:+.4f}]",
                           f"{p['sonokit_better']} / {p['reference_better']}", f"{p['wilcoxon_p']:.3g}"]
                          for p in pairs]) if pairs else "No sonokit per-image rows found; run "
          "`python benchmarks/busi_supervised.py` first.\n",
          "\n## Runs\n",
          markdown_table(["seed", "fraction", "train images", "epochs", "seconds", "test Dice"],
                         [[r["seed"], r["fraction"], r["train_images"], r["epochs"], r["seconds"],
                           f"{r['aggregate']['dice']['mean']:.4f}"] for r in results]),
          f"\nMachine: {doc['machine']['platform']}, torch {doc['machine']['torch']}, "
          f"{doc['machine']['threads']} threads; commit {results[0]['commit'] if results else '?'}.\n"]
    out.with_suffix(".md").write_text("\n".join(md))


if __name__ == "__main__":
    main()
