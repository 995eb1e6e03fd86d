"""A-ViT on CPU: the ACDT block's cost beside a plain ViT block, and pretraining vs data-pipeline throughput.

1. **Block cost**: one ACDT block (deformable sampling + attention; the organ context) and one timm ViT block of
   the same width, forward and forward + backward, on a batch of token grids (128 px and 224 px inputs at patch
   16, widths 192 / ViT-Tiny and 768 / ViT-B), side by side in alternating rounds in one process; wall and CPU
   time per call (median of the rounds), the torch thread count stated. Peak memory: the extra resident memory of
   a forward + backward after a warm-up one, in a fresh subprocess per case (Linux: the peak ``VmHWM`` reset
   through ``/proc/self/clear_refs``, minus the resident size before).
2. **Throughput** of the CPU pretraining preset (``configs/avit_cpu.yaml``: A-ViT-Tiny, method ``arl``, 128 px):
   training images/s of the method's step (``--steps`` steps after one warm-up), and images/s of the data
   pipeline alone (the multi-organ shards -> batches through a DataLoader with 2 workers), which should be at
   least 3x the model's so that data never waits.

Writes ``benchmarks/results/avit_cost.{json,md}``. The shards of ``configs/avit_cpu.yaml`` must exist
(docs/avit.md) for part 2; the load average at the start is recorded (the machine may be shared).

    python benchmarks/avit_cost.py [--rounds 7] [--steps 6] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
OUT = ROOT / "benchmarks" / "results"
CASES = [(192, 3, 128), (192, 3, 224), (768, 12, 224)]  # (width, heads, input px)
BATCH = 8


def blocks(dim: int, heads: int):
    import torch
    from timm.models.vision_transformer import Block

    from sonokit.models.avit import ACDTBlock

    torch.manual_seed(0)
    return {"ACDT": ACDTBlock(dim, heads, n_organs=16), "ViT": Block(dim, heads, qkv_bias=True)}


def call(kind: str, blk, x, organ, grid, backward: bool):
    import torch

    if backward:
        y = blk(x, organ, grid) if kind == "ACDT" else blk(x)
        y.square().mean().backward()
    else:
        with torch.no_grad():
            blk(x, organ, grid) if kind == "ACDT" else blk(x)


def inputs(dim: int, px: int, backward: bool):
    import torch
    import torch.nn.functional as F

    g = px // 16
    x = torch.randn(BATCH, 1 + g * g, dim, requires_grad=backward)
    organ = F.one_hot(torch.zeros(BATCH, dtype=torch.long), 16).float()
    return x, organ, (g, g)


def time_blocks(rounds: int) -> list[dict]:
    out = []
    for dim, heads, px in CASES:
        bl = blocks(dim, heads)
        for backward in (False, True):
            x, organ, grid = inputs(dim, px, backward)
            for kind, blk in bl.items():  # warm-up
                call(kind, blk, x, organ, grid, backward)
            times = {k: ([], []) for k in bl}
            for r in range(rounds):
                for kind in (list(bl) if r % 2 == 0 else list(bl)[::-1]):  # alternating order
                    w0, c0 = time.perf_counter(), time.process_time()
                    call(kind, bl[kind], x, organ, grid, backward)
                    times[kind][0].append(time.perf_counter() - w0)
                    times[kind][1].append(time.process_time() - c0)
            for kind, (w, c) in times.items():
                out.append({"block": kind, "width": dim, "px": px, "tokens": grid[0] * grid[1], "batch": BATCH,
                            "pass": "forward + backward" if backward else "forward",
                            "wall_ms": 1000 * sorted(w)[len(w) // 2], "cpu_ms": 1000 * sorted(c)[len(c) // 2]})
    return out


def peak_case(kind: str, dim: int, heads: int, px: int) -> float:
    """Run in a subprocess: extra peak RSS (MiB) of one forward + backward."""
    bl = blocks(dim, heads)[kind]
    x, organ, grid = inputs(dim, px, True)
    call(kind, bl, x, organ, grid, True)  # warm-up: allocator pools and lazy initialisation
    bl.zero_grad(set_to_none=False)

    def status(key: str) -> float:  # kB
        line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(key))
        return float(line.split()[1])

    before = status("VmRSS:")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current resident size
    call(kind, bl, x, organ, grid, True)
    return (status("VmHWM:") - before) / 1024


def peaks() -> list[dict]:
    out = []
    for dim, heads, px in CASES:
        for kind in ("ACDT", "ViT"):
            r = subprocess.run([sys.executable, __file__, "--peak", kind, str(dim), str(heads), str(px)],
                               capture_output=True, text=True, check=True, env={**os.environ})
            out.append({"block": kind, "width": dim, "px": px, "peak_extra_mib": float(r.stdout.strip().splitlines()[-1])})
    return out


def throughput(steps: int) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from sonokit.config import load_config
    from sonokit.data.shard_stream import ShardDataset
    from sonokit.runs.pretrain import build_pretrain

    cfg = load_config(ROOT / "configs" / "avit_cpu.yaml", [f"out_dir={ROOT / 'runs' / 'avit_cost_tmp'}"])
    root = ROOT / cfg.data.root
    if not (root / "shards.json").exists():
        return {"skipped": f"no shards at {root} (docs/avit.md makes them)"}
    cfg.data.root = str(root)
    # data pipeline alone: shards -> batches, 2 workers
    ds = ShardDataset(root, image_size=cfg.data.image_size, seed=0)
    dl = DataLoader(ds, batch_size=cfg.data.batch_size, num_workers=2)
    n, t0 = 0, time.perf_counter()
    for i, b in enumerate(dl):
        if i == 0:
            t0, n = time.perf_counter(), 0  # the workers' start-up is not throughput
            continue
        n += b["image"].shape[0]
        if n >= 40 * cfg.data.batch_size:
            break
    data_ips = n / (time.perf_counter() - t0)
    # the method's training step, in process (no Lightning loop): images/s
    prep = build_pretrain(cfg, Path(cfg.out_dir), lambda s: None)
    task = prep.task
    import lightning as L

    trainer = L.Trainer(max_steps=steps + 1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    times = []

    class Clock(L.Callback):
        def on_train_batch_start(self, *a):
            self.t = time.perf_counter()

        def on_train_batch_end(self, *a):
            times.append(time.perf_counter() - self.t)

    trainer.callbacks.append(Clock())
    trainer.fit(task, DataLoader(ds, batch_size=cfg.data.batch_size, num_workers=0))
    step_s = sorted(times[1:])[len(times[1:]) // 2]
    return {"batch": cfg.data.batch_size, "image_size": cfg.data.image_size, "model_images_per_s": cfg.data.batch_size / step_s,
            "pipeline_images_per_s_2_workers": data_ips, "ratio": data_ips * step_s / cfg.data.batch_size,
            "steps_timed": len(times) - 1, "median_step_s": step_s, "threads": torch.get_num_threads()}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--peak":
        kind, dim, heads, px = sys.argv[2], *map(int, sys.argv[3:6])
        import torch

        torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
        print(peak_case(kind, dim, heads, px))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch

    from sonokit.provenance import commit, machine
    from sonokit.reports.tables import markdown_table

    torch.set_num_threads(a.threads)
    os.environ["BENCH_THREADS"] = str(a.threads)
    load = os.getloadavg()
    timing, mem = time_blocks(a.rounds), peaks()
    tp = throughput(a.steps)
    doc = {"benchmark": "avit_cost", "threads": a.threads, "rounds": a.rounds, "load_average_at_start": load,
           "commit": commit(), "machine": machine(), "blocks": timing, "peak_memory": mem, "throughput": tp}
    (OUT / "avit_cost.json").write_text(json.dumps(doc, indent=1))
    rows = []
    for dim, _, px in CASES:
        for ps in ("forward", "forward + backward"):
            r = {b["block"]: b for b in timing if b["width"] == dim and b["px"] == px and b["pass"] == ps}
            m = {p["block"]: p["peak_extra_mib"] for p in mem if p["width"] == dim and p["px"] == px}
            rows.append([dim, px, r["ACDT"]["tokens"], ps, f"{r['ViT']['wall_ms']:.1f} / {r['ViT']['cpu_ms']:.1f}",
                         f"{r['ACDT']['wall_ms']:.1f} / {r['ACDT']['cpu_ms']:.1f}",
                         f"{r['ACDT']['wall_ms'] / r['ViT']['wall_ms']:.2f}x",
                         f"{m['ViT']:.0f} / {m['ACDT']:.0f}" if ps == "forward + backward" else "—"])
    md = ["# A-ViT cost on CPU\n",
          f"`python benchmarks/avit_cost.py` — torch {a.threads} threads, batch {BATCH}, median of {a.rounds} "
          f"alternating rounds; load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min).\n",
          "## One block: ACDT (deformable sampling + attention) vs a plain ViT block\n",
          markdown_table(["width", "input px", "tokens", "pass", "ViT ms wall / CPU", "ACDT ms wall / CPU",
                          "ACDT / ViT (wall)", "extra peak MiB ViT / ACDT"], rows),
          "\n## Pretraining throughput (configs/avit_cpu.yaml)\n"]
    if "skipped" in tp:
        md.append(tp["skipped"])
    else:
        md.append(markdown_table(["model images/s (training step)", "pipeline images/s (2 workers)",
                                  "pipeline / model", "target"],
                                 [[f"{tp['model_images_per_s']:.1f}", f"{tp['pipeline_images_per_s_2_workers']:.1f}",
                                   f"{tp['ratio']:.1f}x", "≥ 3x " + ("met" if tp["ratio"] >= 3 else "NOT met")]]))
    md.append(f"\nCommit {doc['commit']}; machine {doc['machine']}.\n")
    (OUT / "avit_cost.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
