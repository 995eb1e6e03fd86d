"""The Ellis et al. 2025 SSL grid on BUSI (issue 4), written to benchmarks/results/ssl_busi.{json,md}.

Usage:
    python benchmarks/ssl_busi.py                                  # the whole CPU grid (about 6 CPU-hours)
    python benchmarks/ssl_busi.py --seeds 0 --fractions 0.2        # a slice of it (the paper's headline setting)
    python benchmarks/ssl_busi.py --preset paper                   # ResNet50 presets, for a GPU
    python benchmarks/ssl_busi.py --merge --seeds 1 --fractions 1.0 --variants pirl_freq   # one cell more

It runs `sonokit experiment ssl-grid` with configs/ssl_grid_busi_<preset>.yaml (resumable: finished runs are
kept under runs/ssl_grid_busi_<preset>/). With --reuse-supervised, the supervised runs of
benchmarks/busi_supervised.py (same fine-tune config, split, epochs and seeds) are copied in instead of
being trained again. With --merge, the rows already in benchmarks/results/ssl_busi.json for runs this
invocation does not have are kept (each row keeps the commit it was computed at) and a ``pretext: best``
variant is pinned to the view the committed file chose, so a grid can grow across sessions whose run folders
are gone: e.g. ``--merge --seeds 2 --fractions 0.2`` adds seed 2 to committed seeds 0 and 1. The pretraining
is seeded (config seed 0) and redone identically for every seed. The result files say which seeds and
fractions they hold.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sonokit.config import load_config  # noqa: E402
from sonokit.experiments import SSLGrid, SSLGridConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=["cpu", "paper"], default="cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--fractions", type=float, nargs="+", default=None)
    ap.add_argument("--reuse-supervised", action="store_true",
                    help="copy runs/bench_busi/<preset>/frac*_seed* (busi_supervised.py) as the supervised variant")
    ap.add_argument("--collect", action="store_true",
                    help="train nothing: write the result files from the runs that have finished so far")
    ap.add_argument("--merge", action="store_true",
                    help="keep the committed result rows of runs not in this invocation; pin 'best' to the committed view")
    ap.add_argument("--variants", nargs="+", default=None,
                    help="train/collect only these variants (the rest keep their committed rows with --merge)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ssl_busi"))
    args = ap.parse_args()
    out = Path(args.out)
    old = json.loads(out.with_suffix(".json").read_text()) if args.merge and out.with_suffix(".json").exists() else None
    cfg_path = ROOT / "configs" / f"ssl_grid_busi_{args.preset}.yaml"
    full = load_config(cfg_path, cls=SSLGridConfig)
    overrides = [f"out_dir={ROOT / 'runs' / f'ssl_grid_busi_{args.preset}'}",
                 f"finetune={ROOT / full.finetune}", f"pretrain={ROOT / full.pretrain}",
                 f"finetune_set=[data.root={ROOT.parent / 'shared' / 'data' / 'busi'}, data.split={ROOT / 'splits' / 'busi_v1.json'}]",
                 f"pretrain_set=[data.root={ROOT.parent / 'shared' / 'data' / 'busi'}, data.split={ROOT / 'splits' / 'busi_v1.json'}]"]
    if args.seeds is not None:
        overrides.append(f"seeds={json.dumps(args.seeds)}")
    if args.fractions is not None:
        keep = [full.fractions.index(f) for f in args.fractions]
        overrides += [f"fractions={json.dumps(args.fractions)}",
                      f"epochs={json.dumps([full.epochs[i] for i in keep])}",
                      f"val_every={json.dumps([full.val_every[i] for i in keep])}"]
    cfg = load_config(cfg_path, overrides, cls=SSLGridConfig)
    grid = SSLGrid(cfg)
    if old is not None:
        for v in grid.cfg.variants:
            if v.pretext == "best" and v.name in old.get("pretext_choices", {}):
                v.pretext = old["pretext_choices"][v.name]
                print(f"{v.name}: pretext pinned to the committed choice '{v.pretext}'")
    all_variants = list(grid.cfg.variants)
    if args.variants is not None:
        unknown = sorted(set(args.variants) - {v.name for v in all_variants})
        if unknown:
            ap.error(f"unknown variant(s) {unknown}; the preset has {[v.name for v in all_variants]}")
        grid.cfg.variants = [v for v in all_variants if v.name in args.variants]
    if args.reuse_supervised:
        for seed in cfg.seeds:
            for frac in cfg.fractions:
                src = ROOT / "runs" / "bench_busi" / args.preset / f"frac{frac:g}_seed{seed}"
                dst = grid.out / "finetune" / "supervised" / f"frac{frac:g}_seed{seed}"
                if (src / "eval" / "time.json").exists() and not dst.exists():
                    shutil.copytree(src, dst)
                    print(f"reusing {src} as {dst}")
    grid.run(train=not args.collect)
    grid.cfg.variants = all_variants  # the tables list every variant of the preset
    if old is not None:  # committed rows of runs this invocation did not produce
        key = lambda r: (r["variant"], r["seed"], r["fraction"])  # noqa: E731
        new = {key(r) for r in grid.rows}
        kept = [r for r in old["rows"] if key(r) not in new]
        for name, choice in old.get("pretext_choices", {}).items():
            grid.choices.setdefault(name, choice)
        grid.rows = sorted(grid.rows + kept, key=lambda r: (r["fraction"], r["seed"]))
        fr = sorted({r["fraction"] for r in grid.rows})  # the table lists the merged fractions and seeds
        grid.cfg.fractions, grid.cfg.seeds = fr, sorted({r["seed"] for r in grid.rows})
        grid.cfg.epochs = [full.epochs[full.fractions.index(f)] for f in fr]
        grid.cfg.val_every = [full.val_every[full.fractions.index(f)] for f in fr]
        grid.write(report=True)
        print(f"merged {len({key(r) for r in kept})} committed run(s) with {len(new)} from this invocation")
    doc = json.loads((grid.out / "results.json").read_text())
    doc["benchmark"] = "ssl_busi"
    done = {(r["variant"], r["seed"], r["fraction"]) for r in doc["rows"]}
    seeds = sorted({s for _, s, _ in done})
    fractions = sorted({f for _, _, f in done})
    doc["complete"] = (seeds == sorted(full.seeds) and fractions == sorted(full.fractions)
                       and len(done) == len(full.variants) * len(full.seeds) * len(full.fractions))
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    md = (grid.out / "results.md").read_text()
    missing = [f"{v.name} seed {s} {f:g}" for v in cfg.variants for s in seeds for f in fractions
               if (v.name, s, f) not in done]
    commits = sorted({r["commit"] for r in doc["rows"]})
    scope = ("the whole grid" if doc["complete"] else
             f"a slice of the grid: seeds {seeds}, label fractions {fractions} (the full preset has seeds "
             f"{full.seeds} and fractions {full.fractions})" + (f"; runs not finished yet: {', '.join(missing)}" if missing else ""))
    md += (f"\nPreset `{cfg_path.relative_to(ROOT)}`; this file holds {scope}. Rows computed at commit(s) "
           f"{', '.join(commits)}. "
           f"Regenerate: `python benchmarks/ssl_busi.py --preset {args.preset}"
           + (" --reuse-supervised" if args.reuse_supervised else "")
           + (f" --seeds {' '.join(map(str, seeds))}" if not doc["complete"] else "")
           + (f" --fractions {' '.join(f'{f:g}' for f in fractions)}" if not doc["complete"] else "") + "`.\n"
           f"\nMachine: {doc['machine']['platform']}, torch {doc['machine']['torch']}, {doc['machine']['device']}.\n")
    out.with_suffix(".md").write_text(md)
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
