"""The enhancement benchmark of Khan et al. 2026 (arXiv 2601.21856): ``sonokit experiment enhance-bench``.

Three studies, one results table each, one HTML report:

1. **Noise study.** Held-out frames (the test part of a fixed split, downscaled so the longer side is
   ``frames.max_side``) are the references; each gets additive Gaussian noise at several σ (8-bit units,
   σ/255) and multiplicative Nakagami-m speckle (on the envelope of the log-compressed frame, m = 1:
   Rayleigh) with a seeded generator, is clipped to [0, 1], and is restored BLINDLY (no method is told the
   noise level) by every trained network, classical filter and hybrid (``hybrids``: ``nllr_wiener`` guided
   by one of the networks, :mod:`sonokit.enhance.hybrid`). PSNR / SSIM against the reference and seconds
   per image, mean ± std over frames.
2. **PSF study** (controlled): a simulated B-mode phantom (:func:`sonokit.physics.simulate_ultrasound`) with
   bright point targets on weak speckle and a lateral step edge; extra Gaussian PSF blur of known σ (pixels,
   axial = lateral) plus weak Gaussian noise, then every method. Axial / lateral FWHM of the points (mm, on
   the linear envelope recovered from the log-compressed image: the classical -6 dB width) and the peak
   lateral gradient of the row-averaged edge profile (per mm), against the unblurred phantom.
3. **Plug-and-play.** A fixed segmentation model per dataset (trained once from its config, or given as a
   checkpoint) scores the test split on raw images and on images enhanced by each method. A network runs at
   the pixel scale it was trained at (the frame is downscaled to its ``max_side``, enhanced and resized back
   to the original size); classical filters and NLLR run at ``frames.max_side`` the same way. ``raw`` is
   untouched; ``raw_resampled`` goes through the same downscale / resize-back round trip without any
   filtering, to tell the effect of enhancement from that of resampling. Dice / IoU mean ± std over images.

Every result is cached in ``out_dir`` with the inputs that decide it (frame ids, seeds, settings, the
checkpoint and its modification time) and the commit, time and thread count it was computed with; a cached
result whose inputs differ is recomputed, a trained model whose config differs is refused. Rerunning resumes.
Timings are those of the run that computed each result. Output:
``results.json`` (one row per study, dataset, setting, method, metric), ``results.md`` and ``report.html``
(tables, before/after image pairs, the PSF profiles).
"""
from __future__ import annotations

import html
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..enhance.hybrid import GUIDE_WEIGHT
from ..errors import ConfigError
from ..provenance import commit, machine
from .ssl_grid import _asdict


# ------------------------------------------------------------------------------------------------ config
@dataclass
class BenchEnhancer:
    """A trained network: from ``checkpoint`` when given, else trained once from ``config`` (+ ``set``
    overrides, e.g. ``model.name=scunet_small``) into ``out_dir/models/<name>``."""
    name: str = "dncnn_small"
    config: str = "configs/enhance_busi_cpu.yaml"
    set: list[str] = field(default_factory=list)
    checkpoint: str | None = None


@dataclass
class BenchHybrid:
    """NLLR + collaborative Wiener guided by one of the bench's networks (:mod:`sonokit.enhance.hybrid`): the
    Wiener pilot is ``(1 - guide_weight) · NLLR + guide_weight · network``; runs at ``frames.max_side``."""
    name: str = "nllr_wiener_guided"
    guide: str = "drunet_small_gaussian"  # the name of an entry of ``enhancers``
    guide_weight: float = GUIDE_WEIGHT


@dataclass
class BenchFrames:
    root: str = "../shared/data/busi"
    format: str | None = None
    split: str | None = "splits/busi_v1.json"
    part: str = "test"
    classes: list[str] | None = None
    n: int = 16
    max_side: int = 256


@dataclass
class NoiseSetting:
    kind: str = "gaussian"  # gaussian: level = σ in 8-bit units (σ/255); speckle: level = Nakagami m
    level: float = 25.0


@dataclass
class PSFStudy:
    enabled: bool = True
    blur_sigmas: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0])  # extra blur, pixels
    noise_sigma: float = 2.0  # 8-bit units
    image_size: int = 256
    dynamic_range_db: float = 50.0
    seed: int = 7


@dataclass
class SegSet:
    """A dataset for plug-and-play: a segmentation ``checkpoint``, or a segmentation ``config`` trained once
    into ``out_dir/seg/<name>``; scored on the ``part`` of the config's split (at most ``max_images``)."""
    name: str = "busi"
    config: str = "configs/busi_resunet18_cpu.yaml"
    set: list[str] = field(default_factory=list)
    checkpoint: str | None = None
    part: str = "test"
    max_images: int | None = None


@dataclass
class EnhanceBenchConfig:
    name: str = "enhance_bench"
    out_dir: str = "runs/enhance_bench"
    seed: int = 0
    device: str = "cpu"
    frames: BenchFrames = field(default_factory=BenchFrames)
    enhancers: list[BenchEnhancer] = field(default_factory=lambda: [BenchEnhancer()])
    classical: list[str] = field(default_factory=lambda: ["median", "srad", "nllr", "bm3d"])
    hybrids: list[BenchHybrid] = field(default_factory=list)
    noise: list[NoiseSetting] = field(default_factory=lambda: [
        NoiseSetting("gaussian", 10), NoiseSetting("gaussian", 25), NoiseSetting("gaussian", 50),
        NoiseSetting("speckle", 4), NoiseSetting("speckle", 1)])
    speckle_dynamic_range_db: float = 50.0
    psf: PSFStudy = field(default_factory=PSFStudy)
    segmentation: list[SegSet] = field(default_factory=list)
    plug_methods: list[str] | None = None  # default: every network and nllr
    tile: int = 256
    overlap: int = 64


# ------------------------------------------------------------------------------------------------ methods
@dataclass
class Method:
    """A restoration method: (H, W) float [0, 1] -> (H, W) float [0, 1], at ``max_side`` pixel scale."""
    name: str
    kind: str  # network | classical | hybrid | identity
    fn: Callable[[np.ndarray], np.ndarray]
    max_side: int | None = None
    spec: dict = field(default_factory=dict)  # what the method is (checkpoint and its mtime, filter name): cache key


def identity(name: str, max_side: int | None = None) -> Method:
    """The unprocessed baseline (``input``, ``raw``; ``raw_resampled`` with a ``max_side``)."""
    return Method(name, "identity", lambda im: im, max_side, {"identity": True, **({"max_side": max_side} if max_side else {})})


def apply_at_scale(method: Method, image: np.ndarray) -> np.ndarray:
    """Run ``method`` at its pixel scale (:func:`sonokit.enhance.inference.at_scale` with its ``max_side``)."""
    from ..enhance.inference import at_scale

    return at_scale(method.fn, image, method.max_side)


def degrade_frame(ref: np.ndarray, setting: NoiseSetting, seed: int, *, dynamic_range_db: float) -> np.ndarray:
    """The noisy version of ``ref`` for one noise setting, reproducible from ``seed``; clipped to [0, 1]."""
    from ..physics.degrade import add_gaussian_noise, apply_speckle

    x = torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float32))[None, None]
    if setting.kind == "gaussian":
        y = add_gaussian_noise(x, torch.tensor([setting.level / 255.0]), seed=seed)
    elif setting.kind == "speckle":
        y = apply_speckle(x, m=torch.tensor([float(setting.level)]), seed=seed, dynamic_range_db=dynamic_range_db)
    else:
        raise ConfigError(f"noise kind must be gaussian or speckle, found '{setting.kind}'")
    return y.clamp(0, 1)[0, 0].numpy()


def setting_name(s: NoiseSetting) -> str:
    return f"gaussian σ={s.level:g}/255" if s.kind == "gaussian" else f"speckle m={s.level:g}"


# ------------------------------------------------------------------------------------------------ PSF phantom
def psf_phantom(size: int = 256, *, seed: int = 7, dynamic_range_db: float = 50.0) -> dict:
    """A simulated linear-array B-mode (``size`` x ``size`` px over 30 x 20 mm) with a 3 x 3 grid of point
    targets (amplitude 25x) on weak speckle (echogenicity 0.3) in the upper two thirds and a lateral step edge
    (0.1 | 1.0 at x = 0) in the lower third. Returns image, pixel size (mm), point pixel positions, edge rows/column."""
    from ..physics.simulator import pulse_echo_fwhm_mm, random_scatterers, simulate_ultrasound

    z_range, x_range = (0.0, 30.0), (-10.0, 10.0)
    ech = np.full((size, size), 0.3)
    z = np.linspace(*z_range, size)
    x = np.linspace(*x_range, size)
    edge_rows = z >= 21.0
    ech[np.ix_(edge_rows, x < 0)] = 0.1
    ech[np.ix_(edge_rows, x >= 0)] = 1.0
    cell = pulse_echo_fwhm_mm()
    pos, amp = random_scatterers(ech, x_range_mm=x_range, z_range_mm=z_range, resolution_cell_mm=cell,
                                 scatterers_per_cell=10.0, margin_mm=1.5, seed=seed)
    pts = np.array([(px, pz) for pz in (5.0, 11.0, 17.0) for px in (-6.0, 0.0, 6.0)])
    sim = simulate_ultrasound(positions_mm=np.concatenate([pos, pts]),
                              amplitudes=np.concatenate([amp, np.full(len(pts), 25.0)]),
                              depth_range_mm=z_range, width_mm=20.0, image_shape=(size, size),
                              dynamic_range_db=dynamic_range_db)
    dz, dx = float(np.diff(sim.z_mm).mean()), float(np.diff(sim.x_mm).mean())
    peaks = [(int(np.argmin(abs(sim.z_mm - pz))), int(np.argmin(abs(sim.x_mm - px)))) for px, pz in pts]
    rows = np.nonzero(sim.z_mm >= 22.0)[0]
    return {"image": sim.image.astype(np.float32), "spacing": (dz, dx), "peaks": peaks,
            "edge_rows": (int(rows[0]), int(rows[-1]) - 3), "edge_col": int(np.argmin(abs(sim.x_mm)))}


def psf_measures(image: np.ndarray, ph: dict, *, dynamic_range_db: float, window: int = 14) -> dict:
    """Axial / lateral FWHM (mm) of each of the phantom's points (lists) and the peak edge gradient (per mm)."""
    from ..metrics.quality import fwhm, peak_edge_gradient

    env = 10 ** (dynamic_range_db * (np.asarray(image, np.float64) - 1) / 20)  # display -> linear envelope
    dz, dx = ph["spacing"]
    ax, lat = [], []
    H, W = env.shape
    for r, c in ph["peaks"]:
        r0, r1, c0, c1 = max(0, r - 3), min(H, r + 4), max(0, c - 3), min(W, c + 4)
        loc = env[r0:r1, c0:c1]
        rr, cc = np.unravel_index(int(np.argmax(loc)), loc.shape)
        rr, cc = rr + r0, cc + c0
        ax.append(fwhm(env[max(0, rr - window):rr + window + 1, cc], dz))
        lat.append(fwhm(env[rr, max(0, cc - window):cc + window + 1], dx))
    a, b = ph["edge_rows"]
    c = ph["edge_col"]
    prof = np.asarray(image, np.float64)[a:b, max(0, c - 20):c + 21].mean(0)
    return {"axial_fwhm_mm": [float(v) for v in ax], "lateral_fwhm_mm": [float(v) for v in lat],
            "edge_gradient_per_mm": peak_edge_gradient(prof, spacing=dx)}


# ------------------------------------------------------------------------------------------------ experiment
def _write_json(path: Path, doc) -> None:
    """Write JSON atomically (a killed run never leaves a truncated cache file)."""
    from ..data.io import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(doc, default=float)))


def _norm(spec: dict) -> dict:
    return json.loads(json.dumps(spec, default=str))


def _file_spec(path: Path) -> dict:
    p = Path(path)
    return {"path": str(p), "mtime": round(p.stat().st_mtime, 3) if p.exists() else None}


RESERVED = ("input", "raw", "raw_resampled")


def _mean_std(v) -> tuple[float, float]:
    a = np.asarray([x for x in v if x is not None and not math.isnan(x)], dtype=float)
    if not a.size:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


class EnhanceBench:
    """Runs :class:`EnhanceBenchConfig`; ``run()`` returns the result rows."""

    def __init__(self, cfg: EnhanceBenchConfig, *, log=print) -> None:
        from ..enhance.classical import CLASSICAL

        self.cfg, self.log, self.out = cfg, log, Path(cfg.out_dir)
        names = [e.name for e in cfg.enhancers] + list(cfg.classical) + [h.name for h in cfg.hybrids]
        if len(set(names)) != len(names):
            raise ConfigError(f"method names must be unique (networks, classical filters, hybrids); found {names}")
        for h in cfg.hybrids:
            if h.guide not in [e.name for e in cfg.enhancers]:
                raise ConfigError(f"hybrid '{h.name}': guide '{h.guide}' is not among the enhancers "
                                  f"{[e.name for e in cfg.enhancers]}")
            if not 0 <= h.guide_weight <= 1:
                raise ConfigError(f"hybrid '{h.name}': guide_weight must be in [0, 1], found {h.guide_weight}")
        reserved = [n for n in names if n in RESERVED]
        if reserved:
            raise ConfigError(f"method names {reserved} are reserved for the unprocessed baselines {list(RESERVED)}")
        unknown = [w for w in (cfg.plug_methods or []) if w not in names]
        if unknown:
            raise ConfigError(f"plug_methods names {unknown}, which are not among the methods {names}")
        if any(not sg >= 0 for sg in cfg.psf.blur_sigmas):
            raise ConfigError(f"psf.blur_sigmas must be >= 0 pixels, found {cfg.psf.blur_sigmas}")
        for c in cfg.classical:
            CLASSICAL.get(c)
        for s in cfg.noise:
            if s.kind not in ("gaussian", "speckle"):
                raise ConfigError(f"noise kind must be gaussian or speckle, found '{s.kind}'")
            if s.kind == "gaussian" and not s.level >= 0:
                raise ConfigError(f"gaussian noise level (σ in 8-bit units) must be >= 0, found {s.level}")
            if s.kind == "speckle" and not s.level >= 0.5:
                raise ConfigError(f"speckle level (Nakagami m) must be >= 0.5, found {s.level}")
        if cfg.frames.n < 1 or cfg.frames.max_side < 16:
            raise ConfigError(f"frames.n must be >= 1 and frames.max_side >= 16; found {cfg.frames.n}, {cfg.frames.max_side}")
        self.rows: list[dict] = []
        self.figures: list[str] = []
        self.skipped: dict[str, str] = {}
        self.commit = commit()
        self._last: dict = {}  # provenance of the last cached result (commit, time, threads, device)

    # --- methods -------------------------------------------------------------------------------------------
    def train_enhancer(self, e: BenchEnhancer) -> Path:
        from ..config import load_config
        from ..runs import fit

        if e.checkpoint:
            if not Path(e.checkpoint).is_file():
                raise ConfigError(f"enhancer '{e.name}': checkpoint '{e.checkpoint}' does not exist")
            return Path(e.checkpoint)
        run = self.out / "models" / e.name
        return self._train_once(run, {"config": e.config, "set": list(e.set)}, e.name, lambda: fit(
            load_config(e.config, [*e.set, f"out_dir={run}", "trainer.progress=lines"], task="enhance"),
            resume=(run / "checkpoints" / "last.ckpt").exists(), log=self.log, prefix=f"  {e.name} "))

    def _train_once(self, run: Path, spec: dict, name: str, train: Callable[[], object]) -> Path:
        """Train into ``run`` unless a finished run from the same config (``spec``) is there; best.ckpt's path.

        ``train_time.json`` records the config and the training seconds (summed over resumed calls)."""
        done = run / "train_time.json"
        if done.exists():
            rec = json.loads(done.read_text())
            if {"config": rec.get("config"), "set": rec.get("set")} != _norm(spec):
                raise ConfigError(f"'{run}' holds '{name}' trained from {rec.get('config')} {rec.get('set')}, not from "
                                  f"{spec['config']} {spec['set']}; remove the folder or give the model another name")
            return run / "checkpoints" / "best.ckpt"
        partial = run / "train_time.partial.json"
        before = json.loads(partial.read_text())["seconds"] if partial.exists() else 0.0
        self.log(f"{name}: training from {spec['config']} {' '.join(spec['set'])} in {run}")
        t0 = time.time()
        try:
            train()
        finally:
            _write_json(partial, {"seconds": before + time.time() - t0})
        _write_json(done, {**_norm(spec), "seconds": before + time.time() - t0, "threads": torch.get_num_threads(),
                           "device": self.cfg.device})
        partial.unlink()
        return run / "checkpoints" / "best.ckpt"

    def _cached(self, path: Path, spec: dict, compute: Callable[[], dict]) -> dict:
        """``compute()`` once per ``spec`` (every input that decides the result); stored with the commit, time and
        thread count it was computed with. A cache file whose spec differs is recomputed."""
        import datetime as _dt

        spec = _norm(spec)
        if path.exists():
            doc = json.loads(path.read_text())
            if isinstance(doc, dict) and doc.get("spec") == spec:
                self._last = doc.get("computed", {})
                return doc["result"]
            self.log(f"{path}: computed with other settings; recomputing")
        result = compute()
        self._last = {"commit": self.commit, "time": _dt.datetime.now().isoformat(timespec="seconds"),
                      "threads": torch.get_num_threads(), "device": self.cfg.device}
        _write_json(path, {"spec": spec, "result": result, "computed": self._last})
        return result

    def methods(self) -> list[Method]:
        from ..enhance.classical import CLASSICAL
        from ..enhance.hybrid import GuidedNLLRWiener
        from ..enhance.inference import enhance_image, load_enhancer

        out, nets = [], {}
        for e in self.cfg.enhancers:
            ck = self.train_enhancer(e)
            net, hp = load_enhancer(ck, device=self.cfg.device)
            nets[e.name] = net
            fn = (lambda net: lambda im: enhance_image(net, im, tile=self.cfg.tile, overlap=self.cfg.overlap))(net)
            ms = (hp.get("image") or {}).get("max_side")
            if ms != self.cfg.frames.max_side:
                self.log(f"note: '{e.name}' was trained on frames at {ms or 'full size'} px; the noise study runs every "
                         f"method on frames at <= {self.cfg.frames.max_side} px")
            out.append(Method(e.name, "network", fn, ms, {"checkpoint": _file_spec(ck), "tile": self.cfg.tile,
                                                         "overlap": self.cfg.overlap}))
        for c in self.cfg.classical:
            if c == "bm3d":
                try:
                    import bm3d  # noqa: F401
                except ImportError:
                    self.skipped["bm3d"] = "the optional 'bm3d' package is not installed (pip install 'sonokit[physics]')"
                    self.log(f"bm3d skipped: {self.skipped['bm3d']}")
                    continue
            out.append(Method(c, "classical", CLASSICAL.create(c), self.cfg.frames.max_side, {"classical": c}))
        for h in self.cfg.hybrids:
            g = next(m for m in out if m.name == h.guide)
            fn = GuidedNLLRWiener(nets[h.guide], guide_weight=h.guide_weight, tile=self.cfg.tile, overlap=self.cfg.overlap)
            out.append(Method(h.name, "hybrid", fn, self.cfg.frames.max_side,
                              {"hybrid": "nllr_wiener", "guide": g.spec, "guide_weight": h.guide_weight}))
        return out

    # --- studies -------------------------------------------------------------------------------------------
    def frames(self) -> list[tuple[str, np.ndarray]]:
        from ..data import open_dataset
        from ..data.pairs import downscale
        from ..data.splits import filter_classes, split_ids

        f = self.cfg.frames
        reader = open_dataset(f.root, f.format)
        ids = split_ids(f.split, f.part, reader, f.classes) if f.split else filter_classes(reader.ids, reader, f.classes)
        if not ids:
            raise ConfigError(f"frames: no image in the '{f.part}' part of {f.root}")
        pick = np.random.default_rng(self.cfg.seed).choice(len(ids), min(f.n, len(ids)), replace=False)
        return [(ids[i], downscale(reader.get(ids[i]).image[0], f.max_side)) for i in sorted(pick)]

    def noise_seed(self, k: int) -> int:
        """Base seed of noise setting ``k`` (frame ``i`` adds ``i``); part of every cache key."""
        return self.cfg.seed * 1_000_003 + 7919 * k

    def noise_study(self, methods: list[Method], frames: list[tuple[str, np.ndarray]]) -> None:
        from ..metrics.quality import psnr, ssim

        f = self.cfg.frames
        base = {"frames": {"root": str(f.root), "ids": [sid for sid, _ in frames], "max_side": f.max_side},
                "speckle_dynamic_range_db": self.cfg.speckle_dynamic_range_db}
        for k, s in enumerate(self.cfg.noise):
            sname = setting_name(s)
            noisy = [degrade_frame(ref, s, self.noise_seed(k) + i, dynamic_range_db=self.cfg.speckle_dynamic_range_db)
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

                spec = {**base, "setting": {"kind": s.kind, "level": s.level}, "seed": self.noise_seed(k), "method": m.spec}
                per = self._cached(self.out / "noise" / f"{s.kind}_{s.level:g}_{m.name}.json", spec, compute)
                self._add("noise", self.cfg.frames.root, sname, m, per)
                self.log(f"noise {sname} {m.name}: PSNR {np.mean(per['psnr']):.2f} dB, SSIM {np.mean(per['ssim']):.3f}, "
                         f"{np.mean(per['seconds']):.3f} s/image")
        self.figures.append(self._noise_figure(methods, frames))

    def psf_study(self, methods: list[Method]) -> None:
        from ..physics.degrade import add_gaussian_noise, psf_blur

        p = self.cfg.psf
        ph = psf_phantom(p.image_size, seed=p.seed, dynamic_range_db=p.dynamic_range_db)
        clean = ph["image"]
        ref = psf_measures(clean, ph, dynamic_range_db=p.dynamic_range_db)
        self._add("psf", "phantom", "reference", identity("phantom (no extra blur)"), ref)
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

                meas = self._cached(self.out / "psf" / f"blur{sg:g}_{m.name}.json", spec, compute)
                if sg == max(p.blur_sigmas):  # the report shows every method at the strongest blur
                    examples[m.name] = np.asarray(m.fn(x), dtype=np.float32) if y is None else y
                self._add("psf", "phantom", setting, m, meas)
        if examples:
            self.figures.append(self._psf_figure(clean, examples, ph))

    def seg_study(self, methods: list[Method]) -> None:
        from ..config import load_config
        from ..data import open_dataset
        from ..data.splits import split_ids
        from ..evaluation import evaluate_segmentation
        from ..inference import Segmenter
        from ..runs import fit

        wanted = self.cfg.plug_methods or [m.name for m in methods if m.kind in ("network", "hybrid") or m.name == "nllr"]
        # raw_resampled: the raw image through the same downscale / resize-back round trip as the classical
        # filters, so a change can be told apart from the effect of resampling alone
        plug = [identity("raw"), identity("raw_resampled", self.cfg.frames.max_side)] + [m for m in methods if m.name in wanted]
        for s in self.cfg.segmentation:
            seg_cfg = load_config(s.config, s.set, task="segment")
            if s.checkpoint:
                ckpt = Path(s.checkpoint)
            else:
                run = self.out / "seg" / s.name
                ckpt = self._train_once(run, {"config": s.config, "set": list(s.set)}, s.name, lambda: fit(
                    load_config(s.config, [*s.set, f"out_dir={run}", "trainer.progress=lines"], task="segment"),
                    resume=(run / "checkpoints" / "last.ckpt").exists(), log=self.log, prefix=f"  {s.name} "))
            segm = Segmenter.from_checkpoint(ckpt, device=self.cfg.device)
            d = seg_cfg.data
            reader = open_dataset(d.root, d.format)
            if d.split is None:
                raise ConfigError(f"segmentation set '{s.name}': its config '{s.config}' has no data.split")
            ids = split_ids(d.split, s.part, reader, d.classes)
            if s.max_images is not None and len(ids) > s.max_images:
                ids = [ids[i] for i in sorted(np.random.default_rng(self.cfg.seed).choice(len(ids), s.max_images,
                                                                                           replace=False))]
            for m in plug:
                def compute(m=m) -> dict:
                    t0 = time.time()
                    ev = evaluate_segmentation(segm, data_root=d.root, data_format=d.format, ids=ids, out_dir=None, name="test",
                                  transform=lambda im: apply_at_scale(m, im[0])[None])
                    self.log(f"plug-and-play {s.name} {m.name}: {time.time() - t0:.0f}s")
                    return {"n": ev["n"], "skipped": ev["skipped"], "rows": ev["rows"]}

                spec = {"ids": ids, "segmenter": _file_spec(ckpt), "method": m.spec, "max_side": m.max_side}
                ev = self._cached(self.out / "plug" / s.name / f"{m.name}.json", spec, compute)
                per = {k: [r[k] for r in ev["rows"]] for k in ("dice", "iou", "hd95")}
                self._add("plug", s.name, f"{ev['n']} {s.part} images", m, per)
            self.figures.append(self._plug_figure(s.name, reader, ids, plug, segm))

    # --- bookkeeping ---------------------------------------------------------------------------------------
    def _add(self, study: str, dataset: str, setting: str, m: Method, values: dict) -> None:
        for metric, v in values.items():
            v = v if isinstance(v, list) else [v]
            mean, std = _mean_std(v)
            n = sum(1 for x in v if x is not None and math.isfinite(x))
            self.rows.append({"study": study, "dataset": dataset, "setting": setting, "method": m.name, "kind": m.kind,
                              "metric": metric, "mean": mean, "std": std, "n": n,
                              "computed": self._last if study != "psf" or setting != "reference" else {}})

    def run(self) -> list[dict]:
        self.out.mkdir(parents=True, exist_ok=True)
        methods = self.methods()
        if self.cfg.noise:
            self.noise_study(methods, self.frames())
            self.write()
        if self.cfg.psf.enabled:
            self.psf_study(methods)
            self.write()
        if self.cfg.segmentation:
            self.seg_study(methods)
        self.write(report=True)
        return self.rows

    def row(self, study: str, setting: str, method: str, metric: str, dataset: str | None = None) -> dict | None:
        return next((r for r in self.rows if (r["study"], r["setting"], r["method"], r["metric"]) ==
                     (study, setting, method, metric) and (dataset is None or r["dataset"] == dataset)), None)

    def value(self, study: str, setting: str, method: str, metric: str, dataset: str | None = None) -> tuple[float, float]:
        r = self.row(study, setting, method, metric, dataset)
        return (r["mean"], r["std"]) if r else (math.nan, math.nan)

    def tables(self) -> list[tuple[str, list[str], list[list]]]:
        from ..reports.tables import fmt_mean_std

        def cell(study, setting, method, metric, digits=2, dataset=None):
            r = self.row(study, setting, method, metric, dataset)
            if r is None or math.isnan(r["mean"]):
                return "—"
            return f"{r['mean']:.{digits}f}" if r["n"] == 1 else fmt_mean_std(r["mean"], r["std"], digits)

        out = []
        methods = list(dict.fromkeys(r["method"] for r in self.rows if r["study"] == "noise"))
        settings = list(dict.fromkeys(r["setting"] for r in self.rows if r["study"] == "noise"))
        if settings:
            header = ["method"] + [f"{s} PSNR (dB)" for s in settings] + [f"{s} SSIM" for s in settings] + ["s / image"]
            rows = [[m] + [cell("noise", s, m, "psnr") for s in settings] + [cell("noise", s, m, "ssim", 3) for s in settings]
                    + [f"{np.nanmean([self.value('noise', s, m, 'seconds')[0] for s in settings]):.3f}"] for m in methods]
            n = self.row("noise", settings[0], methods[0], "psnr")["n"]
            out.append((f"Noise study: {n} held-out frames, PSNR / SSIM against the frame "
                        "(mean ± std over frames)", header, rows))
        settings = list(dict.fromkeys(r["setting"] for r in self.rows if r["study"] == "psf"))
        if settings:
            header = ["setting", "method", "axial FWHM (mm)", "lateral FWHM (mm)", "edge peak gradient (/mm)"]
            rows = []
            for s in settings:
                for m in dict.fromkeys(r["method"] for r in self.rows if r["study"] == "psf" and r["setting"] == s):
                    rows.append([s, m] + [cell("psf", s, m, k, 3) for k in ("axial_fwhm_mm", "lateral_fwhm_mm",
                                                                               "edge_gradient_per_mm")])
            out.append(("PSF study: simulated phantom, 9 point targets (FWHM: mean ± std over points; -6 dB "
                        "width of the linear envelope) and a lateral step edge", header, rows))
        datasets = list(dict.fromkeys(r["dataset"] for r in self.rows if r["study"] == "plug"))
        if datasets:
            header = ["dataset", "images", "method", "Dice", "IoU", "Dice change vs raw"]
            rows = []
            for d in datasets:
                s = next(r["setting"] for r in self.rows if r["study"] == "plug" and r["dataset"] == d)
                raw = self.value("plug", s, "raw", "dice", d)[0]
                for m in dict.fromkeys(r["method"] for r in self.rows if r["study"] == "plug" and r["dataset"] == d):
                    dm = self.value("plug", s, m, "dice", d)[0]
                    rows.append([d, s, m, cell("plug", s, m, "dice", 3, d), cell("plug", s, m, "iou", 3, d),
                                 "—" if m == "raw" else f"{100 * (dm - raw):+.1f} pts"])
            out.append(("Plug-and-play: a fixed segmentation model on raw vs enhanced test images (mean ± std over "
                        "images)", header, rows))
        return out

    def write(self, report: bool = False) -> None:
        from ..reports.tables import html_table, markdown_table

        doc = {"experiment": "enhance_bench", "config": _asdict(self.cfg), "skipped_methods": self.skipped,
               "machine": machine(),
               "rows": self.rows}
        (self.out / "results.json").write_text(json.dumps(doc, indent=1, default=float))
        md = [f"# Enhancement benchmark: {self.cfg.name}\n",
              "Every method is blind (no noise level is given). 'input' is the degraded image itself.\n"]
        md += [f"Skipped: {k} ({v}).\n" for k, v in self.skipped.items()]
        for title, header, rows in self.tables():
            md += [f"## {title}\n", markdown_table(header, rows), ""]
        (self.out / "results.md").write_text("\n".join(md))
        if report:
            from ..reports.html import write_page

            parts = [f"<h1>sonokit enhancement benchmark: {html.escape(self.cfg.name)}</h1>",
                     "<p>Every method is blind (no noise level is given). 'input' is the degraded image itself.</p>"]
            for title, header, rows in self.tables():
                parts += [f"<h2>{html.escape(title)}</h2>", html_table(header, rows)]
            parts += self.figures
            write_page(self.out / "report.html", f"sonokit enhance-bench: {self.cfg.name}", parts)

    # --- figures -------------------------------------------------------------------------------------------
    def _noise_figure(self, methods: list[Method], frames) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..metrics.quality import psnr
        from ..reports.html import _png

        sid, ref = frames[0]
        settings = self.cfg.noise
        cols = ["reference", "degraded"] + [m.name for m in methods]
        fig, axes = plt.subplots(len(settings), len(cols), figsize=(2.1 * len(cols), 2.2 * len(settings)), squeeze=False)
        for k, s in enumerate(settings):
            x = degrade_frame(ref, s, self.noise_seed(k), dynamic_range_db=self.cfg.speckle_dynamic_range_db)
            ims = [ref, x] + [np.asarray(m.fn(x), np.float32) for m in methods]
            for j, (c, im) in enumerate(zip(cols, ims)):
                ax = axes[k, j]
                ax.imshow(im, cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([]), ax.set_yticks([])
                ax.set_title(c if j == 0 else f"{c}\n{psnr(im, ref):.1f} dB", fontsize=8)
            axes[k, 0].set_ylabel(setting_name(s), fontsize=8)
        return (f"<h2>Before / after: noise study (frame {html.escape(sid)})</h2>"
                f"<img src='{_png(fig)}' alt='noise study examples'>")

    def _psf_figure(self, clean: np.ndarray, examples: dict, ph: dict) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..reports.html import _png

        names = list(examples)
        fig, axes = plt.subplots(2, len(names) + 1, figsize=(2.3 * (len(names) + 1), 4.8), squeeze=False)
        r, c = ph["peaks"][4]
        for j, (n, im) in enumerate([("phantom", clean)] + [(n, examples[n]) for n in names]):
            axes[0, j].imshow(im, cmap="gray", vmin=0, vmax=1)
            axes[0, j].set_title(n, fontsize=8)
            axes[0, j].set_xticks([]), axes[0, j].set_yticks([])
            axes[1, j].plot(clean[r, max(0, c - 20):c + 21], "k--", lw=0.8, label="phantom")
            axes[1, j].plot(im[r, max(0, c - 20):c + 21], "r", lw=1)
            axes[1, j].set_ylim(0, 1.05)
            axes[1, j].set_title("lateral profile, centre point", fontsize=7)
        return (f"<h2>PSF study at the strongest blur (σ = {max(self.cfg.psf.blur_sigmas):g} px)</h2>"
                f"<img src='{_png(fig)}' alt='PSF study'>")

    def _plug_figure(self, name: str, reader, ids: list[str], plug: list[Method], segm) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..metrics.segmentation import segmentation_metrics
        from ..reports.html import _png

        s = reader.get(ids[0])
        fig, axes = plt.subplots(1, len(plug), figsize=(2.6 * len(plug), 2.8), squeeze=False)
        for j, m in enumerate(plug):
            im = apply_at_scale(m, s.image[0])
            pred = segm.predict(im) >= segm.threshold
            dice = segmentation_metrics(pred, s.mask[0], s.spacing)["dice"] if s.mask is not None else math.nan
            ax = axes[0, j]
            ax.imshow(im, cmap="gray", vmin=0, vmax=1)
            if s.mask is not None:
                ax.contour(s.mask[0], levels=[0.5], colors="lime", linewidths=0.8)
            ax.contour(pred, levels=[0.5], colors="red", linewidths=0.8)
            ax.set_title(f"{m.name}: Dice {dice:.3f}", fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
        return (f"<h2>Plug-and-play on {html.escape(name)}: raw vs enhanced ({html.escape(s.id)})</h2>"
                "<p>Ground truth green, prediction red.</p>"
                f"<img src='{_png(fig)}' alt='plug-and-play {html.escape(name)}'>")
