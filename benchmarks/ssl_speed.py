"""SSL speed, side by side in one run (issue 4):

1. frequency band-stop augmentation of a batch of 64 images of 256x256: sonokit's batched torch
   ``FrequencyBandStop`` vs a per-image NumPy loop computing the same masks and filter (outputs compared);
2. pretraining throughput (images/s): ``sonokit pretrain``'s Lightning ``PretrainTask`` vs a plain PyTorch
   loop doing the same work per step (views, forward, backward, AdamW step, memory-bank update).

Usage: python benchmarks/ssl_speed.py [--device cuda] [--steps 20]
Writes benchmarks/results/ssl_speed.{json,md}.
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


def timeit(fn, repeat: int = 5) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return float(min(ts))  # best of: on a shared machine noise only ever adds time


def bench_frequency(device: str) -> dict:
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
    t_np, t_torch = timeit(loop, 5), timeit(batched, 10)
    return {"batch": 64, "size": 256, "numpy_loop_s": t_np, "torch_batched_s": t_torch, "speedup": t_np / t_torch,
            "max_abs_diff": max_diff, "device": device}


def bench_pretrain(device: str, steps: int, encoder: str, size: int, batch: int) -> dict:
    import lightning as L

    from sonokit.tasks import PretrainTask

    n = batch * steps
    g = torch.Generator().manual_seed(0)
    data = torch.nn.functional.avg_pool2d(torch.rand(n, 1, size, size, generator=g), 3, 1, 1)

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            return {"image": data[i], "index": i}

    kw = dict(method="rcl+perceptual", method_kwargs={"encoder": encoder, "n_data": n, "num_negatives": 4096},
              pretext="freq+cross_jigsaw", grid=6, augment={"rotate": 10.0, "scale": (1.0, 1.3), "translate": 0.1},
              lr=1e-3, image_size=size)

    # plain PyTorch: the same task's pieces, driven by hand
    torch.manual_seed(0)
    task = PretrainTask(**kw).to(device)
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

    plain_epoch()  # warm-up (and NCE normaliser)
    times = []
    for _ in range(2):  # best of two timed epochs (the machine is shared; noise only ever adds time)
        t0 = time.perf_counter()
        plain_epoch()
        times.append(time.perf_counter() - t0)
    t_plain = min(times)

    # Lightning, as `sonokit pretrain` runs it (epoch 1 = warm-up, best of epochs 2 and 3)
    torch.manual_seed(0)
    task = PretrainTask(**kw)

    class EpochTimer(L.Callback):
        times: list = []

        def on_train_epoch_start(self, trainer, pl_module):
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            if device == "cuda":
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.t0)

    timer = EpochTimer()
    trainer = L.Trainer(max_epochs=3, accelerator="gpu" if device == "cuda" else "cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[timer])
    trainer.fit(task, torch.utils.data.DataLoader(DS(), batch_size=batch, shuffle=True, drop_last=True))
    t_light = min(timer.times[1:])  # epoch 1 is the warm-up, as for the plain loop
    return {"encoder": encoder, "size": size, "batch": batch, "steps": steps, "plain_img_s": n / t_plain,
            "lightning_img_s": n / t_light, "overhead_pct": 100 * (t_light - t_plain) / t_plain, "device": device}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--encoder", default="resnet18")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ssl_speed"))
    args = ap.parse_args()
    freq = bench_frequency(args.device)
    print(f"frequency band-stop: numpy loop {freq['numpy_loop_s']:.3f}s, torch batched {freq['torch_batched_s']:.3f}s, "
          f"{freq['speedup']:.1f}x (max diff {freq['max_abs_diff']:.1e})", flush=True)
    pre = bench_pretrain(args.device, args.steps, args.encoder, args.size, args.batch)
    print(f"pretraining: plain {pre['plain_img_s']:.1f} img/s, Lightning {pre['lightning_img_s']:.1f} img/s, "
          f"overhead {pre['overhead_pct']:+.1f}%", flush=True)
    machine = {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu"}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"benchmark": "ssl_speed", "frequency": freq, "pretrain": pre,
                                                    "machine": machine}, indent=1))
    md = ["# SSL speed\n", "Regenerate: `python benchmarks/ssl_speed.py` (add `--device cuda` on a GPU).\n",
          "## Frequency band-stop, 64 images of 256x256\n",
          markdown_table(["implementation", "seconds per batch (best of 5 / 10)", "speed-up"],
                         [["NumPy, one image at a time", f"{freq['numpy_loop_s']:.3f}", "1x"],
                          [f"sonokit, batched torch ({freq['device']})", f"{freq['torch_batched_s']:.3f}", f"{freq['speedup']:.1f}x"]]),
          f"Outputs agree to {freq['max_abs_diff']:.1e} (max abs difference). Target: >= 20x.\n",
          f"## Pretraining throughput ({pre['encoder']}, {pre['size']} px, batch {pre['batch']}, rcl+perceptual, "
          f"freq+cross_jigsaw, {pre['steps']} steps timed)\n",
          markdown_table(["loop", "images/s"], [["plain PyTorch", f"{pre['plain_img_s']:.1f}"],
                                                ["Lightning PretrainTask", f"{pre['lightning_img_s']:.1f}"]]),
          f"Framework overhead: {pre['overhead_pct']:+.1f}% (target <= 5%).\n",
          f"Machine: {machine['platform']}, torch {machine['torch']}, {machine['device']}, {machine['threads']} threads.\n"]
    out.with_suffix(".md").write_text("\n".join(md))


if __name__ == "__main__":
    main()
