""":class:`EnhanceBench`: checks the config, builds the methods, runs the studies, writes the tables and report."""
from __future__ import annotations

import dataclasses
import html
import json
import math
from pathlib import Path

import numpy as np

from ...errors import ConfigError
from ...provenance import commit, machine
from . import studies
from .cache import ResultCache, file_spec, train_once
from .config import BenchEnhancer, EnhanceBenchConfig
from .methods import RESERVED, Method


def _mean_std(v) -> tuple[float, float]:
    a = np.asarray([x for x in v if x is not None and not math.isnan(x)], dtype=float)
    if not a.size:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


class EnhanceBench:
    """Runs :class:`EnhanceBenchConfig`; ``run()`` returns the result rows."""

    def __init__(self, cfg: EnhanceBenchConfig, *, log=print) -> None:
        from ...enhance.classical import CLASSICAL

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
        self.figures: list[str] = []  # HTML sections of the report
        self.skipped: dict[str, str] = {}
        self.commit = commit()
        self.cache = ResultCache(commit=self.commit, device=cfg.device, log=log)

    # --- methods -------------------------------------------------------------------------------------------
    def train_enhancer(self, e: BenchEnhancer) -> Path:
        """The checkpoint of network ``e``: its ``checkpoint``, or trained once into ``out_dir/models/<name>``."""
        from ...config import load_config
        from ...runs import fit

        if e.checkpoint:
            if not Path(e.checkpoint).is_file():
                raise ConfigError(f"enhancer '{e.name}': checkpoint '{e.checkpoint}' does not exist")
            return Path(e.checkpoint)
        run = self.out / "models" / e.name
        return train_once(run, {"config": e.config, "set": list(e.set)}, e.name, lambda: fit(
            load_config(e.config, [*e.set, f"out_dir={run}", "trainer.progress=lines"], task="enhance"),
            resume=(run / "checkpoints" / "last.ckpt").exists(), log=self.log, prefix=f"  {e.name} "),
            device=self.cfg.device, log=self.log)

    def methods(self) -> list[Method]:
        """The networks (trained if needed), the classical filters (bm3d skipped when not installed), the hybrids."""
        from ...enhance.classical import CLASSICAL
        from ...enhance.hybrid import GuidedNLLRWiener
        from ...enhance.inference import enhance_image, load_enhancer

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
            out.append(Method(e.name, "network", fn, ms, {"checkpoint": file_spec(ck), "tile": self.cfg.tile,
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

    # --- studies (:mod:`.studies`) -------------------------------------------------------------------------
    def frames(self) -> list[tuple[str, np.ndarray]]:
        """The noise study's reference frames: (id, (H, W) float [0, 1])."""
        return studies.load_frames(self.cfg.frames, seed=self.cfg.seed)

    def noise_seed(self, k: int) -> int:
        """Base seed of noise setting ``k`` (frame ``i`` adds ``i``); part of every cache key."""
        return self.cfg.seed * 1_000_003 + 7919 * k

    def noise_study(self, methods: list[Method], frames: list[tuple[str, np.ndarray]]) -> None:
        studies.noise_study(self, methods, frames)

    def psf_study(self, methods: list[Method]) -> None:
        studies.psf_study(self, methods)

    def seg_study(self, methods: list[Method]) -> None:
        studies.seg_study(self, methods)

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

    # --- rows and tables -----------------------------------------------------------------------------------
    def add(self, study: str, dataset: str, setting: str, m: Method, values: dict) -> None:
        """One row per metric of ``values`` (metric -> value or per-item list: mean ± std over the items), with
        the provenance of the result last returned by ``self.cache`` (none for the PSF reference)."""
        for metric, v in values.items():
            v = v if isinstance(v, list) else [v]
            mean, std = _mean_std(v)
            n = sum(1 for x in v if x is not None and math.isfinite(x))
            self.rows.append({"study": study, "dataset": dataset, "setting": setting, "method": m.name, "kind": m.kind,
                              "metric": metric, "mean": mean, "std": std, "n": n,
                              "computed": self.cache.last if study != "psf" or setting != "reference" else {}})

    def row(self, study: str, setting: str, method: str, metric: str, dataset: str | None = None) -> dict | None:
        return next((r for r in self.rows if (r["study"], r["setting"], r["method"], r["metric"]) ==
                     (study, setting, method, metric) and (dataset is None or r["dataset"] == dataset)), None)

    def value(self, study: str, setting: str, method: str, metric: str, dataset: str | None = None) -> tuple[float, float]:
        r = self.row(study, setting, method, metric, dataset)
        return (r["mean"], r["std"]) if r else (math.nan, math.nan)

    def tables(self) -> list[tuple[str, list[str], list[list]]]:
        from ...reports.tables import fmt_mean_std

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
        """``results.json`` and ``results.md`` in ``out_dir``; with ``report``, ``report.html`` too."""
        from ...reports.tables import html_table, markdown_table

        doc = {"experiment": "enhance_bench", "config": dataclasses.asdict(self.cfg), "skipped_methods": self.skipped,
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
            from ...reports.html import write_page

            parts = [f"<h1>sonokit enhancement benchmark: {html.escape(self.cfg.name)}</h1>",
                     "<p>Every method is blind (no noise level is given). 'input' is the degraded image itself.</p>"]
            for title, header, rows in self.tables():
                parts += [f"<h2>{html.escape(title)}</h2>", html_table(header, rows)]
            parts += self.figures
            write_page(self.out / "report.html", f"sonokit enhance-bench: {self.cfg.name}", parts)
