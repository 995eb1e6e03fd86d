"""Add a trained enhancement run to the shipped models (called by :mod:`.build` for ``task: enhance`` runs).

The run's ``checkpoints/best.ckpt`` is scored on ``n`` held-out test frames of its split (drawn with seed 0, at
<= 256 px, as ``sonokit experiment enhance-bench``'s noise study draws them) degraded by fixed noise settings
(Gaussian σ = 10 and 25 in 8-bit units, fully developed speckle m = 1; seeds fixed): PSNR and SSIM against the
clean frame, beside the input's. A guide network (``guide=True``, for ``sonokit enhance --refine nllr-wiener``) is
also scored inside the hybrid (:class:`sonokit.enhance.hybrid.GuidedNLLRWiener`) at σ = 25. The weights ship in
fp16 when no setting's mean PSNR moves by ``max_db_loss`` (0.05 dB) or more, else in float32.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import HERE, INDEX

SETTINGS = (("gaussian", 10.0), ("gaussian", 25.0), ("speckle", 1.0))
DYNAMIC_RANGE_DB = 50.0


def score(fn, frames, noisy) -> dict:
    from ..metrics.quality import psnr, ssim

    ps, ss = [], []
    for (_, ref), x in zip(frames, noisy):
        y = np.asarray(fn(x), dtype=np.float32)
        ps.append(psnr(y, ref))
        ss.append(ssim(y, ref))
    return {"psnr": [float(np.mean(ps)), float(np.std(ps, ddof=1))], "ssim": [float(np.mean(ss)),
                                                                           float(np.std(ss, ddof=1))]}


def build_enhancer_entry(run: str | Path, name: str, *, alias: str | None, summary: str, use: str,
                         failures: list[str], guide: bool = False, n: int = 16, max_db_loss: float = 0.05,
                         log=print) -> dict:
    import torch

    from ..data.io import sha256_file
    from ..enhance.inference import enhance_image, load_enhancer
    from ..experiments.enhance_bench.config import BenchFrames, NoiseSetting
    from ..experiments.enhance_bench.methods import degrade_frame
    from ..experiments.enhance_bench.studies import load_frames
    from ..export import export_safetensors
    from .docs import card_config, rel

    run = Path(run)
    ck = run / "checkpoints" / "best.ckpt"
    net, hp = load_enhancer(ck)
    data = hp.get("data") or {}
    frames = load_frames(BenchFrames(root=data["root"], format=data.get("format"), split=data.get("split"),
                                     part="test", n=n, max_side=256), seed=0)
    noisy = {s: [degrade_frame(ref, NoiseSetting(*s), 1000 * k + i, dynamic_range_db=DYNAMIC_RANGE_DB)
                 for i, (_, ref) in enumerate(frames)] for k, s in enumerate(SETTINGS)}

    def scores(model) -> dict:
        with torch.no_grad():
            return {f"{k} {v:g}": score(lambda x: enhance_image(model, x), frames, noisy[(k, v)])
                    for k, v in SETTINGS}

    full = scores(net)
    inputs = {f"{k} {v:g}": score(lambda x: x, frames, noisy[(k, v)]) for k, v in SETTINGS}
    out = HERE / "weights" / f"{name}.safetensors"
    out.parent.mkdir(exist_ok=True)
    (HERE / "cards").mkdir(exist_ok=True)
    export_safetensors(net, hp, out, fp16=True)
    from . import ZooEntry, torch_model

    def shipped():
        return torch_model(ZooEntry(name, "enhance", alias, out.name, sha256_file(out), "", "", ""))[0]

    half = scores(shipped())
    loss = max(abs(full[s]["psnr"][0] - half[s]["psnr"][0]) for s in full)
    dtype = "float16"
    if loss >= max_db_loss:
        log(f"fp16 moves a mean PSNR by {loss:.3f} dB (>= {max_db_loss}): shipping float32")
        export_safetensors(net, hp, out)
        half, dtype = full, "float32"
    hybrid = None
    if guide:
        from ..enhance.hybrid import GuidedNLLRWiener

        h = GuidedNLLRWiener(shipped())
        hybrid = score(lambda x: h(x), frames, noisy[("gaussian", 25.0)])
    sha = sha256_file(out)
    info = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
    lines = [f"# Model card: {name}", "", summary, "",
             f"- Use: `sonokit enhance scan.png --out enhanced{' --model ' + alias if alias else ''}` (no checkpoint)"
             + (", and as the guide of `sonokit enhance scan.png --refine nllr-wiener`" if guide else "") + ".",
             f"- File: `sonokit/zoo/weights/{out.name}` ({out.stat().st_size / 2**20:.2f} MiB, {dtype}); model "
             f"`{hp['model']}` (blind: it is not told the noise level); any image size (padded to a multiple of "
             f"{net.multiple}); trained on frames at <= {(hp.get('image') or {}).get('max_side')} px.",
             f"- Trained by: `sonokit train enhance` with the config below, {info.get('epochs', '?')} epochs in "
             f"{info.get('seconds', '?')} s; commit {info.get('commit', '?')}. Targets: "
             f"{(hp.get('image') or {}).get('target')}.",
             f"- Data: `{rel(data.get('root'))}`, split `{rel(data.get('split'))}`: train frames for training; the "
             f"{len(frames)} test frames below were never seen.", "",
             f"## Metrics of the shipped file ({len(frames)} held-out test frames at <= 256 px, mean ± std over frames)",
             "", "Noise added to the clean frame with fixed seeds (Gaussian σ in 8-bit units; speckle: Nakagami m on "
             f"the envelope, {DYNAMIC_RANGE_DB:g} dB display range); PSNR / SSIM against the clean frame.", "",
             "| noise | input PSNR | shipped PSNR | input SSIM | shipped SSIM |", "|---|---|---|---|---|"]
    for s in half:
        i, h = inputs[s], half[s]
        lines.append(f"| {s} | {i['psnr'][0]:.2f} ± {i['psnr'][1]:.2f} | {h['psnr'][0]:.2f} ± {h['psnr'][1]:.2f} | "
                     f"{i['ssim'][0]:.3f} | {h['ssim'][0]:.3f} |")
    if hybrid is not None:
        lines += ["", f"As the guide of NLLR + Wiener (`--refine nllr-wiener`, weight 0.4) at Gaussian σ = 25: PSNR "
                  f"{hybrid['psnr'][0]:.2f} ± {hybrid['psnr'][1]:.2f} dB, SSIM {hybrid['ssim'][0]:.3f} "
                  "(BM3D beside it: benchmarks/results/nllr_vs_bm3d.md)."]
    lines += ["", f"fp16 check: largest change of a mean PSNR {loss:.3f} dB (shipped {dtype}).", "",
              "## Intended use", "", use, "", "## Known failure modes", "", *[f"- {f}" for f in failures], "",
              *card_config(run)]
    (HERE / "cards" / f"{name}.md").write_text("\n".join(lines))
    entry = {"name": name, "task": "enhance", "alias": alias, "file": out.name, "sha256": sha, "dtype": dtype,
             "card": f"{name}.md", "summary": summary}
    index = json.loads(INDEX.read_text()) if INDEX.exists() else {"models": []}
    index["models"] = [e for e in index["models"] if e["name"] != name] + [entry]
    INDEX.write_text(json.dumps(index, indent=1) + "\n")
    log(f"{name}: {out} ({out.stat().st_size / 2**20:.2f} MiB, {dtype}); card {HERE / 'cards' / (name + '.md')}")
    return entry
