"""The bench's three studies: noise (PSNR / SSIM), PSF (FWHM, edge gradient) and plug-and-play (Dice / IoU).

Each study function runs on an :class:`~sonokit.experiments.enhance_bench.EnhanceBench`: it reads ``bench.cfg``,
caches every result under ``bench.out`` with ``bench.cache``, adds the rows with ``bench.add`` and appends its
figure (HTML) to ``bench.figures``."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ...errors import ConfigError
from .cache import file_spec, train_once
from .config import BenchFrames
from .figures import noise_figure, plug_figure, psf_figure
from .methods import Method, apply_at_scale, degrade_frame, identity, setting_name
from .psf import psf_measures, psf_phantom

if TYPE_CHECKING:
    from .bench import EnhanceBench


def load_frames(f: BenchFrames, *, seed: int) -> list[tuple[str, np.ndarray]]:
    """``f.n`` frames (id, (H, W) float [0, 1] at <= ``f.max_side`` px) drawn with ``seed`` from the ``f.part``
    part of the split (every image of ``f.classes`` without a split), in id order."""
    from ...data import open_dataset
    from ...data.pairs import downscale
    from ...data.splits import filter_classes, split_ids

    reader = open_dataset(f.root, f.format)
    ids = split_ids(f.split, f.part, reader, f.classes) if f.split else filter_classes(reader.ids, reader, f.classes)
    if not ids:
        raise ConfigError(f"frames: no image in the '{f.part}' part of {f.root}")
    pick = np.random.default_rng(seed).choice(len(ids), min(f.n, len(ids)), replace=False)
    return [(ids[i], downscale(reader.get(ids[i]).image[0], f.max_side)) for i in sorted(pick)]


def noise_study(bench: EnhanceBench, methods: list[Method], frames: list[tuple[str, np.ndarray]]) -> None:
    """Every method (and ``input``) on every frame at every noise setting: PSNR, SSIM, seconds per image."""
    from ...metrics.quality import psnr, ssim

    cfg = bench.cfg
    f = cfg.frames
    base = {"frames": {"root": str(f.root), "ids": [sid for sid, _ in frames], "max_side": f.max_side},
            "speckle_dynamic_range_db": cfg.speckle_dynamic_range_db}
    for k, s in enumerate(cfg.noise):
        sname = setting_name(s)
        noisy = [degrade_frame(ref, s, bench.noise_seed(k) + i, dynamic_range_db=cfg.speckle_dynamic_range_db)
                 for i, (_, ref) in enumerate(frames)]
        for m in [identity("input")] + methods:
            def compute(m=m, noisy=noisy) -> dict:
                m.fn(noisy[0])  # untimed warm-up (allocations, thread pools, CUDA start-up)
                per = {"psnr": [], "ssim": [], "seconds": []}
                for (sid, ref), x in zip(frames, noisy):
                    t0 = time.perf_counter()
                    y = np.asarray(m.fn(x), dtype=np.float32)  # every method at frames.max_side
                    per["seconds"].append(time.perf_counter() - t0)
                    per["psnr"].append(psnr(y, ref))
                    per["ssim"].append(ssim(y, ref))
                return per

            spec = {**base, "setting": {"kind": s.kind, "level": s.level}, "seed": bench.noise_seed(k), "method": m.spec}
            per = bench.cache.get(bench.out / "noise" / f"{s.kind}_{s.level:g}_{m.name}.json", spec, compute)
            bench.add("noise", f.root, sname, m, per)
            bench.log(f"noise {sname} {m.name}: PSNR {np.mean(per['psnr']):.2f} dB, SSIM {np.mean(per['ssim']):.3f}, "
                      f"{np.mean(per['seconds']):.3f} s/image")
    sid, ref = frames[0]
    bench.figures.append(noise_figure(sid, ref, methods, cfg.noise, [bench.noise_seed(k) for k in range(len(cfg.noise))],
                                      dynamic_range_db=cfg.speckle_dynamic_range_db))


def psf_study(bench: EnhanceBench, methods: list[Method]) -> None:
    """The phantom (:func:`psf_phantom`) with extra PSF blur at each ``psf.blur_sigmas`` and weak noise, then
    every method (and ``input``): point FWHM and edge gradient, against the unblurred phantom (``reference``)."""
    from ...physics.degrade import add_gaussian_noise, psf_blur

    p = bench.cfg.psf
    ph = psf_phantom(p.image_size, seed=p.seed, dynamic_range_db=p.dynamic_range_db)
    clean = ph["image"]
    ref = psf_measures(clean, ph, dynamic_range_db=p.dynamic_range_db)
    bench.add("psf", "phantom", "reference", identity("phantom (no extra blur)"), ref)
    examples = {}
    for k, sg in enumerate(p.blur_sigmas):
        x = torch.from_numpy(clean)[None, None]
        if sg > 0:
            t = torch.tensor([float(sg)])
            x = psf_blur(x, axial_sigma=t, lateral_sigma=t, depth_factor=torch.ones(1))
        x = add_gaussian_noise(x, torch.tensor([p.noise_sigma / 255.0]), seed=p.seed + k).clamp(0, 1)[0, 0].numpy()
        setting = f"blur σ={sg:g} px"
        for m in [identity("input")] + methods:
            spec = {"psf": {"image_size": p.image_size, "seed": p.seed, "dynamic_range_db": p.dynamic_range_db,
                            "noise_sigma": p.noise_sigma, "noise_seed": p.seed + k, "blur_sigma": sg},
                    "method": m.spec}
            y = None

            def compute(m=m, x=x) -> dict:
                nonlocal y
                y = np.asarray(m.fn(x), dtype=np.float32)
                return psf_measures(y, ph, dynamic_range_db=p.dynamic_range_db)

            meas = bench.cache.get(bench.out / "psf" / f"blur{sg:g}_{m.name}.json", spec, compute)
            if sg == max(p.blur_sigmas):  # the report shows every method at the strongest blur
                examples[m.name] = np.asarray(m.fn(x), dtype=np.float32) if y is None else y
            bench.add("psf", "phantom", setting, m, meas)
    if examples:
        bench.figures.append(psf_figure(clean, examples, ph, blur_sigma=max(p.blur_sigmas)))


def seg_study(bench: EnhanceBench, methods: list[Method]) -> None:
    """Plug-and-play: per ``segmentation`` set, a fixed segmentation model (its checkpoint, or trained once) on
    ``raw``, ``raw_resampled`` and the enhanced test images (``plug_methods``): Dice, IoU, HD95."""
    from ...config import load_config
    from ...data import open_dataset
    from ...data.splits import split_ids
    from ...evaluation import evaluate_segmentation
    from ...inference import Segmenter
    from ...runs import fit

    cfg = bench.cfg
    wanted = cfg.plug_methods or [m.name for m in methods if m.kind in ("network", "hybrid") or m.name == "nllr"]
    # raw_resampled: the raw image through the same downscale / resize-back round trip as the classical
    # filters, so a change can be told apart from the effect of resampling alone
    plug = [identity("raw"), identity("raw_resampled", cfg.frames.max_side)] + [m for m in methods if m.name in wanted]
    for s in cfg.segmentation:
        seg_cfg = load_config(s.config, s.set, task="segment")
        if s.checkpoint:
            ckpt = Path(s.checkpoint)
        else:
            run = bench.out / "seg" / s.name
            ckpt = train_once(run, {"config": s.config, "set": list(s.set)}, s.name, lambda: fit(
                load_config(s.config, [*s.set, f"out_dir={run}", "trainer.progress=lines"], task="segment"),
                resume=(run / "checkpoints" / "last.ckpt").exists(), log=bench.log, prefix=f"  {s.name} "),
                device=cfg.device, log=bench.log)
        segm = Segmenter.from_checkpoint(ckpt, device=cfg.device)
        d = seg_cfg.data
        reader = open_dataset(d.root, d.format)
        if d.split is None:
            raise ConfigError(f"segmentation set '{s.name}': its config '{s.config}' has no data.split")
        ids = split_ids(d.split, s.part, reader, d.classes)
        if s.max_images is not None and len(ids) > s.max_images:
            ids = [ids[i] for i in sorted(np.random.default_rng(cfg.seed).choice(len(ids), s.max_images, replace=False))]
        for m in plug:
            def compute(m=m) -> dict:
                t0 = time.time()
                ev = evaluate_segmentation(segm, data_root=d.root, data_format=d.format, ids=ids, out_dir=None, name="test",
                                           transform=lambda im: apply_at_scale(m, im[0])[None])
                bench.log(f"plug-and-play {s.name} {m.name}: {time.time() - t0:.0f}s")
                return {"n": ev["n"], "skipped": ev["skipped"], "rows": ev["rows"]}

            spec = {"ids": ids, "segmenter": file_spec(ckpt), "method": m.spec, "max_side": m.max_side}
            ev = bench.cache.get(bench.out / "plug" / s.name / f"{m.name}.json", spec, compute)
            per = {k: [r[k] for r in ev["rows"]] for k in ("dice", "iou", "hd95")}
            bench.add("plug", s.name, f"{ev['n']} {s.part} images", m, per)
        bench.figures.append(plug_figure(s.name, reader.get(ids[0]), plug, segm))
