"""NLLR vs BM3D at equal noise level on real BUSI frames (issue 5): time and PSNR side by side, one run.

Protocol (as in the issue's target): BUSI tumour images resized to 256x256, additive Gaussian noise
σ = 25/255 (seeded), each denoiser given the true σ; PSNR/SSIM against the noise-free image, seconds per
image (median over images, after one warm-up). BM3D is the `bm3d` package (optional extra
`sonokit[physics]`); it is skipped with a note when it is not installed.

Usage: python benchmarks/nllr_vs_bm3d.py [--n 8] [--sigma 25]
Writes benchmarks/results/nllr_vs_bm3d.{json,md}.
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

from sonokit.data import open_dataset  # noqa: E402
from sonokit.enhance import nllr_denoise  # noqa: E402
from sonokit.metrics.quality import psnr, ssim  # noqa: E402
from sonokit.reports.tables import markdown_table  # noqa: E402


def frames(root: Path, n: int, size: int) -> list[tuple[str, np.ndarray]]:
    reader = open_dataset(root, "busi")
    ids = [i for i in reader.ids if reader.record(i).label in ("benign", "malignant")]
    pick = np.random.default_rng(0).choice(len(ids), size=n, replace=False)
    out = []
    for k in sorted(pick):
        s = reader.get(ids[k])
        img = torch.nn.functional.interpolate(torch.from_numpy(s.image)[None], size=(size, size), mode="bilinear",
                                              antialias=True, align_corners=False)
        out.append((ids[k], img[0, 0].clamp(0, 1).numpy()))  # resized to size x size (the protocol)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "busi"))
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--sigma", type=float, default=25.0, help="noise std in 8-bit levels (x/255)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "nllr_vs_bm3d"))
    args = ap.parse_args()
    sigma = args.sigma / 255
    try:
        import bm3d
    except ImportError:
        bm3d = None
    methods = {"NLLR (sonokit, 2 passes)": lambda y: nllr_denoise(y, sigma=sigma),
               "NLLR (sonokit, 1 pass)": lambda y: nllr_denoise(y, sigma=sigma, iterations=1)}
    if bm3d is not None:
        methods["BM3D (bm3d package)"] = lambda y: bm3d.bm3d(y, sigma_psd=sigma)
    rows: dict[str, dict[str, list[float]]] = {m: {"psnr": [], "ssim": [], "seconds": []} for m in ["noisy", *methods]}
    data = frames(Path(args.data), args.n, args.size)
    rng = np.random.default_rng(1)
    for name, fn in methods.items():  # warm-up (allocations, thread pools)
        fn(data[0][1] + sigma * rng.standard_normal(data[0][1].shape).astype(np.float32))
    for sid, clean in data:
        noisy = (clean + sigma * np.random.default_rng(abs(hash(sid)) % 2**32).standard_normal(clean.shape)).astype(np.float32)
        rows["noisy"]["psnr"].append(psnr(noisy, clean))
        rows["noisy"]["ssim"].append(ssim(noisy, clean))
        rows["noisy"]["seconds"].append(0.0)
        for name, fn in methods.items():
            t0 = time.perf_counter()
            den = np.asarray(fn(noisy), dtype=np.float32)
            rows[name]["seconds"].append(time.perf_counter() - t0)
            rows[name]["psnr"].append(psnr(den, clean))
            rows[name]["ssim"].append(ssim(den, clean))
        print(sid, {m: round(v["psnr"][-1], 2) for m, v in rows.items()}, flush=True)
    summary = {m: {"psnr": float(np.mean(v["psnr"])), "ssim": float(np.mean(v["ssim"])),
                   "seconds_median": float(np.median(v["seconds"]))} for m, v in rows.items()}
    ref = summary.get("BM3D (bm3d package)")
    table = []
    for m, s in summary.items():
        speed = f"{ref['seconds_median'] / s['seconds_median']:.1f}x" if ref and s["seconds_median"] > 0 else "—"
        table.append([m, f"{s['psnr']:.2f}", f"{s['ssim']:.3f}", f"{s['seconds_median']:.2f}" if s["seconds_median"] else "—", speed])
    machine = {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"benchmark": "nllr_vs_bm3d", "sigma_8bit": args.sigma, "n": len(data),
                                                    "size": args.size, "summary": summary, "per_image": rows,
                                                    "bm3d_installed": bm3d is not None, "machine": machine}, indent=1))
    md = [f"# NLLR vs BM3D on BUSI ({len(data)} images at {args.size} px, Gaussian σ = {args.sigma:g}/255)\n",
          "Both denoisers get the true σ. PSNR/SSIM against the noise-free image (mean over images); seconds per "
          "image (median). Speed-up relative to BM3D. Regenerate: `python benchmarks/nllr_vs_bm3d.py`.\n",
          markdown_table(["method", "PSNR (dB)", "SSIM", "seconds / image", "speed vs BM3D"], table),
          "" if bm3d is not None else "\nThe `bm3d` package is not installed here (`pip install 'sonokit[physics]'`), so BM3D is missing.\n",
          f"\nMachine: {machine['platform']}, torch {machine['torch']}, {machine['threads']} threads.\n"]
    out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
