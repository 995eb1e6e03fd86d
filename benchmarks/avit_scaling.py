"""A-ViT pretraining at the paper's scale: the measured images/s of one device and the scaling plan built on it.

``python benchmarks/avit_scaling.py`` (on a GPU machine: the paper preset, ViT-B/16 at 224 px, bf16; on CPU
add ``--batch 2 --steps 2``) times the training step of ``configs/avit_paper.yaml`` (method ``arl``: masked
reconstruction + adversarial + DINO multi-crop self-distillation, gradient-adaptive λ) on ONE device with
in-memory images (so the model is timed, not the disk; the paper's 5.2M images are not public), then the data
pipeline of a shard folder (``--shards``, default the CPU preset's) with the config's workers, and writes
``benchmarks/results/avit_scaling.{json,md}``:

* images/s per device (median step after warm-up), peak memory, step time, thread count, device name;
* the epoch time for the paper's 5.2M images on N devices: **5.2M / (N x r x e)**, with r the measured rate
  and e the DDP scaling efficiency, which ONE device cannot measure: the table gives e = 1 (a lower bound on
  the time); e needs runs on 2 and 8 devices (``sonokit pretrain`` with ``trainer.devices``: images per
  epoch / epoch time / (N x r)), which one device cannot give: nothing here is a multi-device measurement;
* whether the pipeline keeps up: shard images/s with the config's workers vs the model's images/s.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
PAPER_IMAGES = 5_200_000


class Synthetic:
    """In-memory gray images with organ labels (the model's input, nothing read from disk)."""

    def __init__(self, n: int, size: int, n_organs: int) -> None:
        import torch

        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(n, 1, size, size, generator=g)
        self.organ = torch.randint(0, n_organs, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.x[i], "organ": self.organ[i]}


def model_rate(cfg, *, steps: int, device: str) -> dict:
    import lightning as L
    import torch
    from torch.utils.data import DataLoader

    from sonokit.data.organs import organ_vocabulary
    from sonokit.runs.pretrain import check_method, method_args
    from sonokit.ssl import SSL_METHODS

    mname, mkw = check_method(cfg)
    d = cfg.data
    data = {"root": "synthetic", "format": "synthetic", "split": None, "split_hash": None}
    task = SSL_METHODS.create(mname, **mkw, **method_args(cfg, mname, PAPER_IMAGES, data))
    ds = Synthetic(d.batch_size * (steps + 2), d.image_size, len(organ_vocabulary(d.organs)))
    gpu = device == "cuda"
    precision = cfg.trainer.precision if gpu else "32-true"
    times: list[float] = []

    class Clock(L.Callback):
        def on_train_batch_start(self, *a):
            if gpu:
                torch.cuda.synchronize()
            self.t = time.perf_counter()

        def on_train_batch_end(self, *a):
            if gpu:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t)

    trainer = L.Trainer(max_steps=steps + 1, accelerator="gpu" if gpu else "cpu", devices=1, precision=precision,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[Clock()])
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.fit(task, DataLoader(ds, batch_size=d.batch_size, shuffle=False, num_workers=0))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    timed = sorted(times[1:]) or times  # the first step compiles / allocates
    step = timed[len(timed) // 2]
    peak = torch.cuda.max_memory_allocated() / 2**20 if gpu else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"images_per_s": d.batch_size / step, "median_step_s": step, "steps_timed": len(timed),
            "batch_per_device": d.batch_size, "image_size": d.image_size, "precision": precision,
            "peak_mib": peak, "peak_kind": "GPU allocated" if gpu else "process RSS", "fit_wall_s": wall,
            "fit_cpu_s": cpu, "threads": torch.get_num_threads(),
            "device_name": torch.cuda.get_device_name() if gpu else "cpu"}


def pipeline_rate(shards: Path, *, size: int, batch: int, workers: int, batches: int = 30) -> dict:
    from torch.utils.data import DataLoader

    from sonokit.data.shard_stream import ShardDataset

    if not (shards / "shards.json").exists():
        return {"skipped": f"no shard folder at {shards} (docs/avit.md makes one)"}
    dl = DataLoader(ShardDataset(shards, image_size=size, seed=0), batch_size=batch, num_workers=workers)
    n, t0 = 0, time.perf_counter()
    for i, b in enumerate(dl):
        if i == 0:
            t0, n = time.perf_counter(), 0  # worker start-up is not throughput
            continue
        n += b["image"].shape[0]
        if i >= batches:
            break
    return {"images_per_s": n / (time.perf_counter() - t0), "workers": workers, "images": n, "shards": str(shards)}


def plan_rows(rate: float, gpus: list[int]) -> list[list]:
    rows = []
    for n in gpus:
        s = PAPER_IMAGES / (n * rate)
        rows.append([n, f"{n * rate:,.3g}", f"{s / 3600:,.2f} h", f"{100 * s / 3600 / 24:,.1f} days"])
    return rows


def render(doc: dict) -> str:
    """The markdown of a result document (also from a saved JSON: ``--render``)."""
    from sonokit.reports.tables import markdown_table

    m, p, e, load = doc["model"], doc["pipeline"], doc["encoder"], doc["load_average_at_start"]
    gpus = [r["devices"] for r in doc["plan"]]
    md = ["# A-ViT pretraining: one device measured, the paper's scale planned\n",
          f"`python benchmarks/avit_scaling.py {' '.join(doc['argv'])}` — {Path(doc['config']).name} "
          f"({e['name']}, ACDT blocks {e.get('acdt_blocks', 'all')}, {m['image_size']} px, method "
          f"{doc['method']['name']}, {doc['method'].get('n_global', 2)} global + {doc['method'].get('n_local', 8)} "
          f"local crops), on **{m['device_name']}** ({m['precision']}, {m['threads']} CPU threads; load average at "
          f"start {load[0]:.1f}). In-memory images: the model is timed, not the disk.\n",
          markdown_table(["images / device", "median step s", "images/s per device", f"peak MiB ({m['peak_kind']})",
                          "fit wall s / CPU s"],
                         [[m["batch_per_device"], f"{m['median_step_s']:.3f}", f"{m['images_per_s']:.3g}",
                           f"{m['peak_mib']:,.0f}", f"{m['fit_wall_s']:.1f} / {m['fit_cpu_s']:.1f}"]]),
          "\n## Data pipeline (shards -> batches)\n",
          p.get("skipped") or (f"{p['images_per_s']:.1f} images/s with {p['workers']} workers "
                               f"({p['images_per_s'] / m['images_per_s']:.1f}x the model's rate on this device; "
                               f"target >= 3x: {'met' if p['images_per_s'] >= 3 * m['images_per_s'] else 'NOT met'})."),
          f"\n## Plan: one epoch of the paper's {PAPER_IMAGES:,} images\n",
          "Epoch time = images / (devices x measured images/s per device x e). **e = 1 here** (perfect DDP "
          "scaling, so these are lower bounds on the time): one device cannot measure e. Next measurement: "
          "`sonokit pretrain --config configs/avit_paper.yaml --set trainer.devices=2` (and 8) on your shards; "
          "e = images per epoch / epoch time / (N x the rate above). The paper's 100 epochs are 100x one epoch.\n",
          *(["**Measured on a CPU, not a GPU** (none was available): 'devices' below are processes like this one "
             f"({m['threads']} thread(s), batch {m['batch_per_device']}, where fixed per-step costs - the "
             f"{doc['method'].get('out_dim', '?')}-prototype DINO head, the crops - dominate). The plan for GPUs "
             "is this same command on a GPU machine (a few minutes; bf16, the preset's batch).\n"]
            if doc["device"] == "cpu" else []),
          markdown_table(["devices", "images/s (e = 1)", "epoch (e = 1)", "100 epochs (e = 1)"],
                         plan_rows(m["images_per_s"], gpus)),
          f"\nCommit {doc['commit']}; machine {doc['machine']}.\n"]
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "avit_paper.yaml"))
    ap.add_argument("--set", action="append", default=[], help="config overrides, as `sonokit pretrain --set`")
    ap.add_argument("--batch", type=int, help="images per device (default: the config's data.batch_size)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps after one warm-up step")
    ap.add_argument("--shards", default=str(ROOT / "runs" / "avit_data" / "shards"))
    ap.add_argument("--gpus", default="1,8,16,32,64", help="device counts of the plan's table")
    ap.add_argument("--out", default=str(OUT), help="folder for avit_scaling.{json,md}")
    ap.add_argument("--render", help="write the markdown of this saved avit_scaling.json beside it; measure nothing")
    a = ap.parse_args()
    if a.render:
        path = Path(a.render)
        (path.parent / "avit_scaling.md").write_text(render(json.loads(path.read_text())))
        return
    import torch

    from sonokit.config import PretrainConfig, load_config
    from sonokit.provenance import commit, machine

    over = list(a.set) + ([f"data.batch_size={a.batch}"] if a.batch else [])
    cfg = load_config(a.config, over, cls=PretrainConfig)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    load = os.getloadavg()
    m = model_rate(cfg, steps=a.steps, device=device)
    p = pipeline_rate(Path(a.shards), size=cfg.data.image_size, batch=cfg.data.batch_size,
                      workers=min(cfg.data.num_workers, os.cpu_count() or 1))
    gpus = [int(g) for g in a.gpus.split(",")]
    doc = {"benchmark": "avit_scaling", "config": a.config, "overrides": over, "device": device, "model": m,
           "pipeline": p, "paper_images": PAPER_IMAGES, "load_average_at_start": load, "commit": commit(),
           "machine": machine(), "argv": sys.argv[1:], "encoder": dict(cfg.encoder), "method": dict(cfg.method),
           "plan": [{"devices": n, "epoch_hours_at_e1": PAPER_IMAGES / (n * m["images_per_s"]) / 3600} for n in gpus]}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "avit_scaling.json").write_text(json.dumps(doc, indent=1))
    md = render(doc)
    (out / "avit_scaling.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
