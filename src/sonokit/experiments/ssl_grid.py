"""The SSL-for-segmentation grid of Ellis et al. 2025: pretrain variants x label fractions x seeds.

For each pretraining variant (``supervised``: no pretraining, ImageNet weights if the fine-tune config
names them; PIRL with jigsaw / cross-patch jigsaw / frequency views; RCL + perceptual with the best view)
the encoder is pretrained once on the unlabeled TRAIN images of the in-domain dataset, then a Res-UNet is
fine-tuned at each label fraction and seed on the fixed split, its checkpoint chosen on val, and scored
once on the in-domain test split and on every out-of-distribution (OOD) dataset. Everything is resumable:
finished pretraining runs (``encoder.safetensors``) and fine-tune runs (``eval/test.json``) are kept.

Output in ``out_dir``: ``results.json`` (one row per variant, dataset, fraction, seed, metric),
``results.md`` (Dice / IoU mean ± std over seeds and the Dice gain over ``supervised``) and
``report.html``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError

METRICS = ("dice", "iou", "hd95", "precision", "recall")


@dataclass
class Variant:
    name: str = "supervised"
    method: str | None = None  # null: no pretraining; else an SSL method (pirl | rcl | rcl+perceptual)
    pretext: str | None = None  # view spec (jigsaw | cross_jigsaw | freq | combos), or "best" (see below)


@dataclass
class OODSet:
    """An out-of-distribution dataset: a folder (``root``), or a phantom simulated into the grid's folder
    (``simulate_n`` > 0 and no root: ``sonokit simulate phantom`` with ``simulate_size`` and ``simulate_seed``)."""
    name: str = "ood"
    root: str = ""
    simulate_n: int = 0
    simulate_size: int = 256
    simulate_seed: int = 1234
    format: str | None = None
    classes: list[str] | None = None
    split: str | None = None  # when given, only its test part is scored; else every image with a mask
    part: str = "test"


@dataclass
class SSLGridConfig:
    """``pretext: best`` picks, among the finished ``pirl`` variants, the view with the highest mean
    validation Dice (never test) of its fine-tuned models."""
    name: str = "ssl_grid"
    out_dir: str = "runs/ssl_grid"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    fractions: list[float] = field(default_factory=lambda: [0.2, 0.5, 1.0])
    epochs: list[int] = field(default_factory=lambda: [100, 40, 25])  # fine-tune epochs per fraction
    val_every: list[int] = field(default_factory=lambda: [4, 2, 1])  # validation interval per fraction
    finetune: str = "configs/busi_resunet18_cpu.yaml"  # segmentation config (sonokit train segment)
    finetune_set: list[str] = field(default_factory=list)  # overrides for it, key=value
    pretrain: str = "configs/ssl_busi_cpu.yaml"  # pretraining config (sonokit pretrain)
    pretrain_set: list[str] = field(default_factory=list)
    variants: list[Variant] = field(default_factory=lambda: [
        Variant("supervised"), Variant("pirl_jigsaw", "pirl", "jigsaw"),
        Variant("pirl_cross_jigsaw", "pirl", "cross_jigsaw"), Variant("pirl_freq", "pirl", "freq"),
        Variant("rcl_perceptual", "rcl+perceptual", "best")])
    ood: list[OODSet] = field(default_factory=list)


def eval_sets(data, ood: list[OODSet], out: Path) -> list[dict]:
    """The evaluation sets of an experiment: the test part of ``data``'s split (a segmentation config's
    ``data`` section), then each out-of-distribution set (``ood_<name>``; a simulated one is written into
    ``out/ood_<name>`` once). Each is ``{name, dataset, root, format, ids[, split]}`` for :func:`score_run`."""
    from ..data import open_dataset
    from ..data.splits import filter_classes, split_ids

    reader = open_dataset(data.root, data.format)
    sets = [{"name": "test", "dataset": reader.name, "root": data.root, "format": reader.name, "split": data.split,
             "ids": split_ids(data.split, "test", reader, data.classes)}]
    for o in ood:
        root = o.root
        if not root:
            if o.simulate_n < 1:
                raise ConfigError(f"OOD set '{o.name}' needs a root folder or simulate_n > 0")
            from ..physics import simulate_phantom

            root = str(Path(out) / f"ood_{o.name}")
            if not (Path(root) / "labels.csv").exists():
                simulate_phantom(root, n=o.simulate_n, size=o.simulate_size, seed=o.simulate_seed)
        r = open_dataset(root, o.format)
        if o.split:
            ids = split_ids(o.split, o.part, r, o.classes)
        else:
            ids = [i for i in filter_classes(r.ids, r, o.classes) if not r.record(i).missing_mask]
        if not ids:
            raise ConfigError(f"OOD set '{o.name}' at '{root}' has no image to score")
        sets.append({"name": f"ood_{o.name}", "dataset": o.name, "root": root, "format": r.name, "ids": ids})
    return sets


def scored_run(cfg, run_dir: Path) -> Path:
    """The folder whose ``checkpoints/best.ckpt`` a run's score comes from: ``run_dir``, or for a multi-stage
    config the last stage's folder ``run_dir/<stage name>``."""
    stages = getattr(cfg, "stages", None)
    return run_dir / stages[-1].name if stages else run_dir


def score_run(run_dir: Path, *, eval_sets: list[dict], device: str = "cpu") -> dict[str, dict]:
    """Score ``run_dir/checkpoints/best.ckpt`` on each eval set ``{name, root, format, ids}``; cached in eval/."""
    from ..evaluation import evaluate_segmentation
    from ..inference import Segmenter

    out, seg = {}, None
    for es in eval_sets:
        path = run_dir / "eval" / f"{es['name']}.json"
        if not path.exists():
            seg = seg or Segmenter.from_checkpoint(run_dir / "checkpoints" / "best.ckpt", device=device)
            evaluate_segmentation(seg, data_root=es["root"], data_format=es["format"], ids=es["ids"],
                                  out_dir=run_dir / "eval", name=es["name"],
                                  extra={"checkpoint": str(run_dir / "checkpoints" / "best.ckpt"),
                                         "part": es.get("part", "test"), "split_file": es.get("split")})
        out[es["name"]] = json.loads(path.read_text())
    return out


def train_and_score(cfg, run_dir: Path, *, eval_sets: list[dict], device: str = "cpu", log=None,
                    prefix: str = "") -> dict[str, dict]:
    """Train (or resume an interrupted) segmentation run, then score its best-on-val checkpoint (of the last
    stage, for a multi-stage config: :func:`scored_run`).

    A run whose ``eval/time.json`` exists finished training and is not trained again. ``log`` receives one
    line per epoch (prefixed with ``prefix``)."""
    from ..runs import fit

    timing = run_dir / "eval" / "time.json"
    if not timing.exists():
        t0 = time.time()
        # stages: each stage resumes itself when it has a checkpoint and is skipped once finished
        resume = bool(getattr(cfg, "stages", None)) or (run_dir / "checkpoints" / "last.ckpt").exists()
        fit(cfg, resume=resume, log=log, prefix=prefix)
        timing.parent.mkdir(parents=True, exist_ok=True)
        timing.write_text(json.dumps({"seconds": time.time() - t0}))
    return score_run(scored_run(cfg, run_dir), eval_sets=eval_sets, device=device)


def best_val_dice(run_dir: Path) -> float:
    """The val Dice that chose ``best.ckpt`` (Lightning's ModelCheckpoint state)."""
    from ..serialization import load_checkpoint

    ck = load_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    for key, state in (ck.get("callbacks") or {}).items():
        if "ModelCheckpoint" in key and state.get("best_model_score") is not None:
            return float(state["best_model_score"])
    return math.nan


class SSLGrid:
    """Runs :class:`SSLGridConfig`; ``run()`` returns the result rows."""

    def __init__(self, cfg: SSLGridConfig, *, log=print) -> None:
        from ..config import PretrainConfig, SegmentConfig, load_config
        from ..models import encoder_spec
        from ..provenance import commit
        from ..ssl import SSL_METHODS, parse_pretext

        self.cfg, self.log, self.out = cfg, log, Path(cfg.out_dir)
        if not (len(cfg.fractions) == len(cfg.epochs) == len(cfg.val_every)):
            raise ConfigError(f"fractions, epochs and val_every must have equal lengths; found {len(cfg.fractions)}, "
                              f"{len(cfg.epochs)}, {len(cfg.val_every)}")
        if not cfg.seeds:
            raise ConfigError("seeds is empty; give at least one seed (the paper's protocol: 3)")
        names = [v.name for v in cfg.variants]
        if len(set(names)) != len(names) or "supervised" not in names:
            raise ConfigError(f"variants need unique names and one named 'supervised' (the baseline); found {names}")
        for v in cfg.variants:
            if v.method is None:
                if v.pretext:
                    raise ConfigError(f"variant '{v.name}' has a pretext but no method")
                continue
            SSL_METHODS.get(v.method)
            if v.pretext != "best":
                parse_pretext(v.pretext or "")
        self.seg_base: SegmentConfig = load_config(cfg.finetune, cfg.finetune_set, task="segment")
        # pretrain the encoder the fine-tuning model is built on (its name and arguments, from the registry)
        enc = {k: v for k, v in encoder_spec(dict(self.seg_base.model)).items() if k != "img_size"}
        self.pre_overrides = [*cfg.pretrain_set, f"encoder={json.dumps(enc)}"]
        self.pre_base: PretrainConfig = load_config(cfg.pretrain, self.pre_overrides, task="pretrain")
        if self.seg_base.data.split is None:
            raise ConfigError(f"the fine-tune config '{cfg.finetune}' has no data.split; the grid needs a fixed split")
        pd, fd = self.pre_base.data, self.seg_base.data
        if pd.root and Path(pd.root).resolve() == Path(fd.root).resolve() and (
                not pd.split or Path(pd.split).resolve() != Path(fd.split).resolve()):
            raise ConfigError(
                f"the pretrain config '{cfg.pretrain}' reads the fine-tune dataset '{fd.root}' with data.split="
                f"{pd.split!r}, not the fine-tune split '{fd.split}': pretraining would see the images the grid "
                f"tests on; set its data.split to '{fd.split}' (pretraining uses the train part only)")
        self.rows: list[dict] = []
        self.choices: dict[str, str] = {}
        self.commit = commit()  # once: every row of this run carries it

    # --- evaluation sets -------------------------------------------------------------------------------
    def eval_sets(self) -> list[dict]:
        return eval_sets(self.seg_base.data, self.cfg.ood, self.out)

    # --- pretraining --------------------------------------------------------------------------------------
    def resolve_pretext(self, v: Variant) -> str:
        if v.pretext != "best":
            return v.pretext
        scores = {}
        for w in self.cfg.variants:
            if w.method == "pirl" and w.pretext != "best":
                vals = [best_val_dice(p) for p in (self.out / "finetune" / w.name).glob("frac*_seed*")
                        if (p / "checkpoints" / "best.ckpt").exists()]
                if vals:
                    scores[w.pretext] = float(np.nanmean(vals))
        if not scores:
            raise ConfigError(f"variant '{v.name}' asks for the best pretext, but no finished 'pirl' variant "
                              "precedes it; list PIRL variants first or name the pretext")
        best = max(scores, key=scores.get)
        self.log(f"{v.name}: best PIRL view by mean val Dice: {best} ({', '.join(f'{k} {s:.4f}' for k, s in scores.items())})")
        return best

    def pretrain(self, v: Variant) -> Path | None:
        from ..config import load_config
        from ..runs import fit

        if v.method is None:
            return None
        run = self.out / "pretrain" / v.name
        enc = run / "encoder.safetensors"
        if enc.exists():  # the view it WAS pretrained with ('best' may point elsewhere once more runs finish)
            from ..serialization import load_weights

            _, meta = load_weights(enc, trustable=False)  # its encoder loads into models: no trust
            self.choices[v.name] = meta.get("pretext") or str(v.pretext)
            return enc
        pretext = self.resolve_pretext(v)
        self.choices[v.name] = pretext
        cfg = load_config(self.cfg.pretrain, [*self.pre_overrides, f"method.name={v.method}", f"method.pretext={pretext}",
                                              f"out_dir={run}", f"name={v.name}", "trainer.progress=lines"],
                          task="pretrain")
        t0 = time.time()
        self.log(f"{v.name}: pretraining {v.method} with {pretext} ({cfg.optim.epochs} epochs) in {run}")
        fit(cfg, resume=(run / "checkpoints" / "last.ckpt").exists(), log=self.log, prefix=f"  {v.name} pretrain ")
        (run / "time.json").write_text(json.dumps({"seconds": time.time() - t0}))
        return enc

    # --- the grid -------------------------------------------------------------------------------------------
    def run(self, *, train: bool = True) -> list[dict]:
        """Run the grid; with ``train=False`` only collect (and score) the runs that already finished."""
        from ..config import load_config

        self.out.mkdir(parents=True, exist_ok=True)
        sets = self.eval_sets()
        for v in self.cfg.variants:
            if not train and v.method is not None and not (self.out / "pretrain" / v.name / "encoder.safetensors").exists():
                continue
            enc = self.pretrain(v)
            for seed in self.cfg.seeds:
                for frac, epochs, val_every in zip(self.cfg.fractions, self.cfg.epochs, self.cfg.val_every):
                    run = self.out / "finetune" / v.name / f"frac{frac:g}_seed{seed}"
                    if not train and not (run / "eval" / "time.json").exists():
                        continue
                    ov = [*self.cfg.finetune_set, f"data.fraction={frac}", f"seed={seed}", f"out_dir={run}",
                          f"optim.epochs={epochs}", f"trainer.check_val_every_n_epoch={val_every}",
                          f"name={v.name}_frac{frac:g}", "trainer.progress=lines"]
                    if enc is not None:
                        ov.append(f"model.encoder_checkpoint={enc}")
                    cfg = load_config(self.cfg.finetune, ov, task="segment")
                    if not (run / "eval" / "time.json").exists():
                        self.log(f"{v.name} fraction {frac:g} seed {seed}: fine-tuning {epochs} epochs in {run}")
                    evs = train_and_score(cfg, run, eval_sets=sets, log=self.log,
                                          prefix=f"  {v.name} {frac:g} s{seed} ")
                    secs = json.loads((run / "eval" / "time.json").read_text())["seconds"]
                    for es in sets:
                        ev = evs[es["name"]]
                        for m in METRICS:
                            self.rows.append({"variant": v.name, "method": v.method or "none",
                                              "pretext": self.choices.get(v.name, "none"), "dataset": es["dataset"],
                                              "split": es["name"], "fraction": frac, "seed": seed, "metric": m,
                                              "value": ev["aggregate"][m]["mean"], "n": ev["n"], "seconds": round(secs, 1),
                                              "commit": self.commit})
                    self.log(f"{v.name} fraction {frac:g} seed {seed}: " + ", ".join(
                        f"{es['name']} Dice {evs[es['name']]['aggregate']['dice']['mean']:.4f}" for es in sets))
                    self.write()
        self.write(report=True)
        return self.rows

    # --- results ----------------------------------------------------------------------------------------------
    def table(self) -> tuple[list[str], list[list]]:
        from ..reports.tables import fmt_mean_std

        def vals(variant, split, frac, metric):
            return np.array([r["value"] for r in self.rows if r["variant"] == variant and r["split"] == split
                             and r["fraction"] == frac and r["metric"] == metric], dtype=float)

        splits = list(dict.fromkeys(r["split"] for r in self.rows))
        header = ["variant", "pretext", "evaluated on", "labels", "Dice", "IoU", "Dice gain vs supervised", "seeds"]
        rows = []
        for split in splits:
            for v in self.cfg.variants:
                for frac in self.cfg.fractions:
                    d, i = vals(v.name, split, frac, "dice"), vals(v.name, split, frac, "iou")
                    base = vals("supervised", split, frac, "dice")
                    if not d.size:
                        continue
                    sd = lambda a: float(a.std(ddof=1)) if a.size > 1 else 0.0  # noqa: E731
                    gain = f"{100 * (d.mean() - base.mean()):+.1f} pts" if base.size and v.name != "supervised" else "—"
                    rows.append([v.name, self.choices.get(v.name, "—"), split, f"{100 * frac:g}%",
                                 fmt_mean_std(float(d.mean()), sd(d), n=d.size),
                                 fmt_mean_std(float(i.mean()), sd(i), n=i.size), gain, d.size])
        return header, rows

    def write(self, report: bool = False) -> None:
        from ..provenance import machine
        from ..reports.tables import html_table, markdown_table

        header, rows = self.table()
        doc = {"experiment": "ssl_grid", "config": _asdict(self.cfg), "pretext_choices": self.choices,
               "machine": machine(),
               "rows": self.rows}
        (self.out / "results.json").write_text(json.dumps(doc, indent=1))
        md = [f"# SSL grid: {self.cfg.name}\n",
              "Dice / IoU: mean ± std over seeds of the per-run mean per-image metric; checkpoints chosen on val; "
              "'test' is the in-domain held-out split, 'ood_*' other datasets. Gain: difference of mean Dice to the "
              "'supervised' variant at the same label fraction, in Dice points.\n",
              markdown_table(header, rows)]
        (self.out / "results.md").write_text("\n".join(md))
        if report:
            from ..reports.html import build_report

            build_report(self.out, self.out / "report.html", title=f"sonokit SSL grid: {self.cfg.name}",
                         extra_html=["<h2>SSL grid</h2>", html_table(header, rows)], galleries=self.galleries())

    def galleries(self) -> list[tuple[Path, str, str]]:
        """One report gallery per variant: its run at the largest label fraction and the lowest seed, on the
        in-domain test split, titled with the variant, its view, the fraction and the seed."""
        frac, seed = max(self.cfg.fractions), min(self.cfg.seeds)
        out = []
        for v in self.cfg.variants:
            run = self.out / "finetune" / v.name / f"frac{frac:g}_seed{seed}"
            if (run / "eval" / "test.json").exists():
                view = self.choices.get(v.name)
                out.append((run, "test", f"{v.name}" + (f" ({v.method}, {view} views)" if view else "")
                            + f", {100 * frac:g}% labels, seed {seed}: test cases"))
        return out


def _asdict(cfg) -> dict:
    import dataclasses

    return dataclasses.asdict(cfg)
