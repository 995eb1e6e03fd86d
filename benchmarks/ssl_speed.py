"""SSL speed, side by side in one run (issue 4):

1. frequency band-stop augmentation of a batch of 64 images of 256x256: sonokit's batched torch
   ``FrequencyBandStop`` vs a per-image NumPy loop computing the same masks and filter (outputs compared);
2. pretraining throughput (images/s): ``sonokit pretrain``'s Lightning ``PretrainMethod`` (``rcl+perceptual``)
   vs a plain PyTorch loop doing the same work per step (views, forward, backward, AdamW step, memory-bank
   update).

In (1) each side is timed in wall time and in the process's CPU time around the same call, the batched torch
call at each of ``--threads`` (default 1 and 2) torch threads, in rounds that alternate the order of the cases.

Usage: python benchmarks/ssl_speed.py [--device cuda] [--steps 20] [--rounds 7] [--threads 1,2] [--skip-pretrain]
    [--out DIR]
Writes DIR/ssl_speed.{json,md} (default DIR: benchmarks/results).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sonokit.reports.tables import markdown_table  # noqa: E402
from sonokit.transforms.frequency import FrequencyBandStop  # noqa: E402


def numpy_bandstop(x: np.ndarray, kind: int, r0: float, width: float, angle: float, thickness: float,
                   keep: float = 10.0) -> np.ndarray:
    """Reference per-image implementation: (H, W) float image -> filtered image (same formula)."""
    h, w = x.shape
    fy, fx = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
    r = np.hypot(fx, fy)
    if kind == 0:
        stop = (r >= r0) & (r < r0 + width)
    else:
        d1 = np.abs(fx * np.sin(angle) - fy * np.cos(angle))
        d2 = np.abs(fx * np.sin(angle) + fy * np.cos(angle))
        stop = (np.minimum(d1, d2) < thickness / 2) & (r < r0 + width)
    stop &= r >= keep
    stop |= stop[(2 * (h // 2) - np.arange(h)) % h][:, (2 * (w // 2) - np.arange(w)) % w]  # M(f) = M(-f)
    X = np.fft.fftshift(np.fft.fft2(x))
    y = np.fft.ifft2(np.fft.ifftshift(np.where(stop, 0, np.abs(X)) * np.exp(1j * np.angle(X)))).real
    return np.clip(y, 0, 1)


def clocks(fn, repeat: int) -> dict[str, list[float]]:
    """Run ``fn`` once as a warm-up, then ``repeat`` times; each call's wall time (``time.perf_counter``) and
    this process's CPU time (``time.process_time``: all of its threads, OpenMP workers included), taken around
    the same call."""
    def sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    fn()  # warm-up (and, after a thread-count change, the thread pool's start)
    sync()
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        sync()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"wall": wall, "cpu": cpu}


def spread(ratios: list[float]) -> dict[str, float]:
    return {"median": float(np.median(ratios)), "min": float(min(ratios)), "max": float(max(ratios))}


def bench_frequency(device: str, rounds_n: int = 7, threads: tuple[int, ...] = (1, 2), repeat_numpy: int = 3,
                    repeat_torch: int = 10) -> dict:
    rng = np.random.default_rng(0)
    x_np = rng.random((64, 256, 256)).astype(np.float32)
    aug = FrequencyBandStop()
    params = aug.sample(64, torch.Generator().manual_seed(0))
    x = torch.from_numpy(x_np)[:, None].to(device)
    p_np = {k: v.numpy() for k, v in params.items()}

    def loop():
        return np.stack([numpy_bandstop(x_np[i], int(p_np["kind"][i]), float(p_np["r0"][i]), float(p_np["width"][i]),
                                        float(p_np["angle"][i]), float(p_np["thickness"][i])) for i in range(64)])

    def batched():
        return aug.apply(x, params)

    ref, got = loop(), batched().cpu().numpy()[:, 0]
    max_diff = float(np.abs(ref - got).max())
    default_threads = torch.get_num_threads()
    # the cases, in their forward order: the NumPy loop, then sonokit's batched call at each torch thread count
    cases = [("numpy", None)] + [(f"torch_{n}", n) for n in threads]
    rounds: list[dict] = []
    try:
        for r in range(rounds_n):
            order = cases if r % 2 == 0 else cases[::-1]  # alternate the order, so neither side always goes first
            rd: dict = {"order": [name for name, _ in order]}
            for name, n in order:
                if n is None:
                    rd[name] = clocks(loop, repeat_numpy)
                else:
                    torch.set_num_threads(n)
                    rd[name] = clocks(batched, repeat_torch)
            for k in ("wall", "cpu"):  # best of the round's repeats: on a shared machine noise only ever adds time
                for name, _ in cases:
                    rd[name][f"{k}_best"] = float(min(rd[name][k]))
            rounds.append(rd)
    finally:
        torch.set_num_threads(default_threads)
    rows = {}
    for name, n in cases:
        row = {"threads": n, "wall_s": float(np.median([rd[name]["wall_best"] for rd in rounds])),
               "cpu_s": float(np.median([rd[name]["cpu_best"] for rd in rounds]))}
        row["cpu_per_wall"] = row["cpu_s"] / row["wall_s"]
        if n is not None:  # per-round ratios, NumPy loop / batched call, in wall and in CPU time
            for k in ("wall", "cpu"):
                row[f"speedup_{k}"] = spread([rd["numpy"][f"{k}_best"] / rd[name][f"{k}_best"] for rd in rounds])
        rows[name] = row
    return {"batch": 64, "size": 256, "rounds": rounds_n, "repeat_numpy": repeat_numpy, "repeat_torch": repeat_torch,
            "torch_threads": list(threads), "torch_default_threads": default_threads, "cases": rows,
            "per_round": rounds, "max_abs_diff": max_diff, "device": device}


def bench_pretrain(device: str, steps: int, encoder: str, size: int, batch: int, rounds_n: int = 3) -> dict:
    import lightning as L

    from sonokit.ssl import create_ssl_method

    n = batch * steps
    g = torch.Generator().manual_seed(0)
    data = torch.nn.functional.avg_pool2d(torch.rand(n, 1, size, size, generator=g), 3, 1, 1)

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            return {"image": data[i], "index": i}

    kw = dict(encoder=encoder, n_data=n, num_negatives=4096, pretext="freq+cross_jigsaw", grid=6,
              augment={"rotate": 10.0, "scale": (1.0, 1.3), "translate": 0.1}, lr=1e-3, image_size=size)

    def make_method():  # the registered method (a PretrainMethod) that `sonokit pretrain` builds and fits
        return create_ssl_method("rcl+perceptual", **kw)

    # plain PyTorch: the same task's pieces, driven by hand
    torch.manual_seed(0)
    task = make_method().to(device)
    opt = torch.optim.AdamW(task.parameters(), lr=1e-3, weight_decay=1e-4)
    dl = torch.utils.data.DataLoader(DS(), batch_size=batch, shuffle=True, drop_last=True)
    task.train()

    def plain_epoch():
        for step, b in enumerate(dl):
            gen = torch.Generator().manual_seed(step)
            v1, v2 = task.views(b["image"].to(device), gen)
            idx = b["index"].to(device)
            out = task.model(v1, v2, idx, gen)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            task.model.bank.update(idx, out["z_image"])
        if device == "cuda":
            torch.cuda.synchronize()

    # Lightning, as `sonokit pretrain` runs it, on its own copy of the task
    torch.manual_seed(0)
    ltask = make_method()

    class EpochTimer(L.Callback):
        def __init__(self):
            self.times = []

        def on_train_epoch_start(self, trainer, pl_module):
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            if device == "cuda":
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.t0)

    def lightning_epochs(k: int) -> list[float]:
        timer = EpochTimer()
        trainer = L.Trainer(max_epochs=k, accelerator="gpu" if device == "cuda" else "cpu", devices=1, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[timer])
        trainer.fit(ltask, torch.utils.data.DataLoader(DS(), batch_size=batch, shuffle=True, drop_last=True))
        return timer.times

    plain_epoch()  # warm-up (and NCE normaliser)
    lightning_epochs(1)  # warm-up
    # alternating rounds, so both loops see the same machine state: best of 2 epochs each, ratio per round
    rounds = []
    for _ in range(rounds_n):
        tp = []
        for _ in range(2):
            t0 = time.perf_counter()
            plain_epoch()
            tp.append(time.perf_counter() - t0)
        rounds.append((min(tp), min(lightning_epochs(2))))
    over = sorted(100 * (tl - tp) / tp for tp, tl in rounds)
    t_plain, t_light = float(np.median([a for a, _ in rounds])), float(np.median([b for _, b in rounds]))
    return {"encoder": encoder, "size": size, "batch": batch, "steps": steps, "plain_img_s": n / t_plain,
            "lightning_img_s": n / t_light, "overhead_pct": float(np.median(over)), "overhead_pct_min": over[0],
            "overhead_pct_max": over[-1], "rounds": rounds_n, "device": device}


def x_range(sp: dict[str, float]) -> str:
    return f"{sp['median']:.1f}x ({sp['min']:.1f}-{sp['max']:.1f}x)"


def frequency_md(freq: dict) -> list[str]:
    cases = freq["cases"]
    table = [["NumPy, one image at a time", "1 (NumPy's FFT is single-threaded)", f"{cases['numpy']['wall_s']:.3f}",
              f"{cases['numpy']['cpu_s']:.3f}", f"{cases['numpy']['cpu_per_wall']:.2f}", "1x", "1x"]]
    verdicts = []
    for n in freq["torch_threads"]:
        c = cases[f"torch_{n}"]
        table.append([f"sonokit, batched torch ({freq['device']})", f"{n} (torch.set_num_threads)",
                      f"{c['wall_s']:.4f}", f"{c['cpu_s']:.4f}", f"{c['cpu_per_wall']:.2f}",
                      x_range(c["speedup_wall"]), x_range(c["speedup_cpu"])])
        verdicts.append(f"- torch at {n} thread{'s' if n > 1 else ''}: {c['speedup_wall']['median']:.1f}x in wall time "
                        f"({'met' if c['speedup_wall']['median'] >= 20 else 'not met'}), "
                        f"{c['speedup_cpu']['median']:.1f}x in CPU time "
                        f"({'met' if c['speedup_cpu']['median'] >= 20 else 'not met'})")
    return [f"## Frequency band-stop, {freq['batch']} images of {freq['size']}x{freq['size']}\n",
            markdown_table(["implementation", "threads", f"wall s per batch (median of {freq['rounds']} rounds)",
                            "CPU s per batch (median)", "CPU / wall", "speed-up, wall (rounds: min-max)",
                            "speed-up, CPU time (rounds: min-max)"], table),
            f"Each round times every case in turn, in forward order (NumPy loop, then the batched torch call at "
            f"{', '.join(str(n) for n in freq['torch_threads'])} thread(s)) in even rounds and in reverse order in odd "
            f"ones. Each case is called once as a warm-up (after `torch.set_num_threads`), then {freq['repeat_numpy']} "
            f"times (NumPy loop) or {freq['repeat_torch']} times (torch); wall time (`time.perf_counter`) and the "
            f"process's CPU time (`time.process_time`, all threads) are taken around the same call, and a round keeps "
            f"the best of its calls for each. Seconds are the medians of the rounds; a speed-up is the median of the "
            f"rounds' ratios (NumPy loop / batched call), with the lowest and highest round in brackets. CPU / wall is "
            f"the effective parallelism: about 1 for one busy thread, up to the thread count when every thread is "
            f"busy, lower when the cores are shared with other work.\n",
            f"Outputs agree to {freq['max_abs_diff']:.1e} (max abs difference). Target: >= 20x, judged on the median "
            f"speed-up:\n" + "\n".join(verdicts) + "\n",
            "On the CPU, sonokit filters the batch in chunks of about 1 M pixels so each chunk's spectrum stays in "
            "cache; the NumPy loop uses full complex FFTs and the amplitude/phase round trip of the paper's formula, "
            "sonokit the equivalent real FFT with the stop band zeroed (see `sonokit.transforms.frequency`).\n"]


def pretrain_md(pre: dict, carried: str | None) -> list[str]:
    note = (f" (carried over from `{carried}`, not rerun: this run used `--skip-pretrain`)" if carried else "")
    return [f"## Pretraining throughput ({pre['encoder']}, {pre['size']} px, batch {pre['batch']}, rcl+perceptual, "
            f"freq+cross_jigsaw, {pre['steps']} steps timed){note}\n",
            markdown_table(["loop", "images/s"], [["plain PyTorch", f"{pre['plain_img_s']:.1f}"],
                                                  ["Lightning PretrainMethod", f"{pre['lightning_img_s']:.1f}"]]),
            f"Framework overhead: {pre['overhead_pct']:+.1f}% (target <= 5%: "
            f"{'met' if pre['overhead_pct'] <= 5 else 'not met'}; negative means the Lightning loop was faster). "
            f"Median of {pre['rounds']} rounds, each timing the plain loop (best of 2 epochs) and then Lightning "
            f"(best of 2 epochs); the rounds ranged from {pre['overhead_pct_min']:+.1f}% to "
            f"{pre['overhead_pct_max']:+.1f}%. Images/s are the medians of the rounds' epoch times (wall time, at "
            f"torch's default thread count).\n"]


def machine_info(device: str) -> dict:
    return {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
            "device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--encoder", default="resnet18")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=7, help="rounds of the band-stop timing")
    ap.add_argument("--threads", default="1,2", help="torch thread counts of the batched band-stop, comma-separated")
    ap.add_argument("--skip-pretrain", action="store_true",
                    help="time only the band-stop; the pretraining section of an earlier DIR/ssl_speed.json is kept")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for ssl_speed.{json,md}")
    args = ap.parse_args()
    out = Path(args.out) / "ssl_speed"
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = machine_info(args.device)  # before any thread-count change: torch's default
    load = [os.getloadavg()[0]] if hasattr(os, "getloadavg") else []
    freq = bench_frequency(args.device, args.rounds, tuple(int(t) for t in args.threads.split(",")))
    for name, c in freq["cases"].items():
        extra = (f", {c['speedup_wall']['median']:.1f}x wall, {c['speedup_cpu']['median']:.1f}x CPU"
                 if c["threads"] is not None else "")
        print(f"frequency band-stop, {name}: {c['wall_s']:.4f}s wall, {c['cpu_s']:.4f}s CPU{extra}", flush=True)
    print(f"max diff {freq['max_abs_diff']:.1e}", flush=True)
    pre, carried, pre_machine = None, None, None
    if not args.skip_pretrain:
        pre = bench_pretrain(args.device, args.steps, args.encoder, args.size, args.batch)
        print(f"pretraining: plain {pre['plain_img_s']:.1f} img/s, Lightning {pre['lightning_img_s']:.1f} img/s, "
              f"overhead {pre['overhead_pct']:+.1f}%", flush=True)
    elif out.with_suffix(".json").exists():  # keep the earlier run's pretraining numbers, labelled as such
        old = json.loads(out.with_suffix(".json").read_text())
        if old.get("pretrain"):
            pre, pre_machine = old["pretrain"], old.get("pretrain_machine") or old.get("machine")
            path = out.with_suffix(".json").resolve()
            carried = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    if hasattr(os, "getloadavg"):
        load.append(os.getloadavg()[0])
    machine["load_1min_start_end"] = load
    result = {"benchmark": "ssl_speed", "frequency": freq, "pretrain": pre, "machine": machine}
    if pre is not None:
        result["pretrain_machine"] = pre_machine or machine
        result["pretrain_carried_over"] = carried is not None
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    md = ["# SSL speed\n", "Regenerate: `python benchmarks/ssl_speed.py` (add `--device cuda` on a GPU; "
          "`--skip-pretrain` reruns only the band-stop).\n", *frequency_md(freq)]
    if pre is not None:
        md += pretrain_md(pre, carried)
        if carried and pre_machine:
            md.append(f"Machine of the pretraining run: {pre_machine.get('platform')}, torch {pre_machine.get('torch')}, "
                      f"{pre_machine.get('device')}, {pre_machine.get('threads')} threads.\n")
    md.append(f"Machine: {machine['platform']}, torch {machine['torch']}, {machine['device']}, "
              f"{machine['cpus_usable']} usable CPU cores, torch default {machine['threads']} threads"
              + (f" (OMP_NUM_THREADS={machine['omp_num_threads_env']})" if machine["omp_num_threads_env"] else "")
              + (f"; 1-min load average {load[0]:.2f} at the start, {load[-1]:.2f} at the end" if load else "")
              + ".\n")
    out.with_suffix(".md").write_text("\n".join(md))


if __name__ == "__main__":
    main()
