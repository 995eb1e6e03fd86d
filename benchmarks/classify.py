"""Image classification on BUSI (benign / malignant / normal) and DDTI (TI-RADS >= 4 vs 2-3), CPU preset.

Trains ``configs/classify_{busi,ddti}_cpu.yaml`` (ResNet18 classifier from random initialisation at 128 px)
for seeds 0, 1, 2 on the committed, de-duplicated, group-aware splits (``splits/busi_v1.json``,
``splits/ddti_v1.json``), takes each run's checkpoint chosen on validation balanced accuracy, and scores it
once on the held-out test split with ``sonokit.evaluate``. Writes ``benchmarks/results/classify.{json,md}``:
one row per dataset, seed and metric (accuracy, balanced accuracy, AUROC, per-class recall), the commit and
the machine; the table is mean ± std over seeds. Finished runs are kept under ``runs/classify/`` and not
trained again, so the script resumes.

    python benchmarks/classify.py [--datasets busi ddti] [--seeds 0 1 2] [--epochs N]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

# everything a run needs, imported now: a long benchmark must not pick up half-edited files later
import sonokit.inference  # noqa: E402,F401
import sonokit.runs.supervised  # noqa: E402,F401
import sonokit.serialization  # noqa: E402,F401
from sonokit.config import load_config  # noqa: E402
from sonokit.evaluation import evaluate  # noqa: E402
from sonokit.provenance import commit, machine  # noqa: E402
from sonokit.reports.tables import fmt_mean_std, markdown_table  # noqa: E402
from sonokit.runs import fit  # noqa: E402

CONFIGS = {"busi": "configs/classify_busi_cpu.yaml", "ddti": "configs/classify_ddti_cpu.yaml"}
METRICS = ("accuracy", "balanced_accuracy", "auroc")
COMMIT = commit()


def run_one(dataset: str, seed: int, epochs: int | None, log) -> dict:
    run = ROOT / "runs" / "classify" / dataset / f"seed{seed}"
    ov = [f"seed={seed}", f"out_dir={run}", "trainer.progress=lines"] + ([f"optim.epochs={epochs}"] if epochs else [])
    cfg = load_config(ROOT / CONFIGS[dataset], ov)
    info = run / "run.json"
    if not (info.exists() and json.loads(info.read_text()).get("status") == "finished"):
        t0 = time.time()
        fit(cfg, resume=(run / "checkpoints" / "last.ckpt").exists(), log=log, prefix=f"{dataset} s{seed} ")
        log(f"{dataset} seed {seed}: trained in {time.time() - t0:.0f}s")
    res = evaluate(run / "checkpoints" / "best.ckpt", split="test", log=log)
    return {"result": res, "run": json.loads(info.read_text())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="override optim.epochs (smoke tests only)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "classify"))
    args = ap.parse_args()
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    rows, details = [], {}
    for ds in args.datasets:
        for seed in args.seeds:
            r = run_one(ds, seed, args.epochs, log)
            res = r["result"]
            details[f"{ds}_seed{seed}"] = {"n": res["n"], "confusion": res["confusion"], "classes": res["classes"],
                                          "recall": res["recall"], "epochs": r["run"].get("epochs"),
                                          "seconds": r["run"].get("seconds")}
            for m in METRICS:
                rows.append({"dataset": ds, "split": "test", "seed": seed, "metric": m, "value": res["metrics"][m],
                             "n": res["n"], "commit": COMMIT})
            for c, v in res["recall"].items():
                rows.append({"dataset": ds, "split": "test", "seed": seed, "metric": f"recall_{c}", "value": v,
                             "n": res["n"], "commit": COMMIT})
            write(rows, details, args, Path(args.out))


def write(rows: list[dict], details: dict, args, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": "classify", "configs": CONFIGS, "seeds": args.seeds, "machine": machine(), "rows": rows,
           "runs": details}
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    header = ["dataset", "test images", "seeds", "accuracy", "balanced accuracy", "AUROC", "recall per class"]
    table = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        def stat(metric):
            v = np.array([r["value"] for r in rows if r["dataset"] == ds and r["metric"] == metric], float)
            v = v[~np.isnan(v)]
            if not v.size:
                return "n/a"
            return f"{v[0]:.3f} (n = 1)" if v.size == 1 else fmt_mean_std(float(v.mean()), float(v.std(ddof=1)))
        recalls = sorted({r["metric"][7:] for r in rows if r["dataset"] == ds and r["metric"].startswith("recall_")})
        n = next(r["n"] for r in rows if r["dataset"] == ds)
        seeds = len({r["seed"] for r in rows if r["dataset"] == ds})
        table.append([ds, n, seeds, stat("accuracy"), stat("balanced_accuracy"), stat("auroc"),
                      "; ".join(f"{c} {stat('recall_' + c)}" for c in recalls)])
    md = ["# Classification, CPU preset (ResNet18 from random initialisation, 128 px)\n",
          f"Held-out test split of the committed splits; checkpoint chosen on validation balanced accuracy; mean ± std "
          f"over seeds of the per-run metric. Commit {rows[-1]['commit'] if rows else '?'}; "
          f"{machine()['threads']} torch threads. Produced by `python benchmarks/classify.py`.\n",
          markdown_table(header, table)]
    for key, d in details.items():
        md.append(f"- {key}: confusion (rows true {', '.join(d['classes'])}) {d['confusion']}; "
                  f"{d['epochs']} epochs in {d['seconds'] if d['seconds'] is not None else math.nan:.0f} s")
    out.with_suffix(".md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
