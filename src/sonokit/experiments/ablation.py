"""A generic ablation: named rows of config overrides x label fractions x seeds, scored on one test split.

Each row is a segmentation config: the ablation's ``base`` config (or the row's own ``base``, e.g. a baseline
of another model family) with the ablation's ``set`` and then the row's ``set`` applied exactly as ``--set``
applies them (:func:`sonokit.config.apply_overrides`): for a multi-stage base config (``stages:``) an override
of a key that a stage also sets holds in that stage too, and ``STAGE:key=value`` overrides one stage only. The
row's ``stages: [names]`` keeps only those stages (e.g. no corrector stage for a row without a corrector).
A row's ``reuse: {stage: row}`` takes that stage from an earlier row's run of the same fraction and seed instead
of training it again (e.g. three corrector variants on one trained base network): the stage folder becomes a
link to the other run's, and the settings in which the two stages' configs differ are logged and recorded.

Every (row, fraction, seed) run is trained through :func:`sonokit.fit` in ``out_dir/runs/<row>/frac<f>_seed<s>``,
its checkpoint chosen on val (of the last stage), and scored once on the test part of the base config's split
and on every out-of-distribution set (:func:`.ssl_grid.train_and_score`). Finished runs are kept: rerunning
trains only what is missing. Every row must read the same dataset and split file, so all rows are scored on
the same test images.

Output in ``out_dir``: ``results.json`` (per run and metric, per-image Dice, the comparisons), ``results.md``
(Dice, IoU, precision, recall, HD95 as mean ± std over seeds; paired per-image comparisons with a bootstrap
CI, :mod:`sonokit.evaluation.paired`) and ``report.html``.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .ssl_grid import METRICS, OODSet, eval_sets, scored_run, train_and_score

COLUMNS = (("dice", "Dice", 3), ("iou", "IoU", 3), ("precision", "precision", 3), ("recall", "recall", 3),
           ("hd95", "HD95", 1))


@dataclass
class AblationRow:
    name: str = "row"
    set: list[str] = field(default_factory=list)  # key=value overrides of the base config; STAGE:key=value
    stages: list[str] | None = None  # keep only these stages of the base config, in this order (null: all)
    base: str | None = None  # this row's own base config (null: the ablation's); same data and split
    reuse: dict[str, str] = field(default_factory=dict)  # {stage: earlier row}: that row's trained stage


@dataclass
class AblationConfig:
    """``compare``: pairs ``[a, b]`` of row names, each reported as the paired per-image Dice difference a - b
    with its bootstrap CI; default: the last row against the first."""
    name: str = "ablation"
    out_dir: str = "runs/ablation"
    base: str = "configs/busi_resunet18_cpu.yaml"  # segmentation config (sonokit train segment)
    set: list[str] = field(default_factory=list)  # overrides for every row
    rows: list[AblationRow] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    fractions: list[float] = field(default_factory=lambda: [1.0])
    ood: list[OODSet] = field(default_factory=list)
    device: str | None = None  # cpu | cuda | cuda:K: training and scoring (null: the configs' trainer, CPU scoring)
    compare: list[list[str]] = field(default_factory=list)
    bootstrap: int = 10000  # bootstrap resamples of the paired comparisons
    bootstrap_seed: int = 0


def parse_ood(arg: str) -> OODSet:
    """An out-of-distribution set from the command line: ``NAME=FOLDER`` or ``FOLDER`` (named after it)."""
    from ..data.io import safe_name

    name, sep, root = arg.partition("=")
    if not sep:
        name, root = safe_name(Path(arg).resolve().name) or "ood", arg
    if not name or not root:
        raise ConfigError(f"--ood '{arg}': expected NAME=FOLDER or FOLDER")
    return OODSet(name=name, root=root)


def device_overrides(device: str | None) -> list[str]:
    """Trainer overrides for ``device`` (``cpu``, ``cuda``, ``cuda:K``)."""
    if device is None:
        return []
    if device == "cpu":
        return ["trainer.accelerator=cpu"]
    if device == "cuda":
        return ["trainer.accelerator=gpu", "trainer.devices=1"]
    if device.startswith("cuda:") and device[5:].isdigit():
        return ["trainer.accelerator=gpu", f"trainer.devices='{int(device[5:])},'"]
    raise ConfigError(f"device must be cpu, cuda or cuda:K; found '{device}'")


class Ablation:
    """Runs :class:`AblationConfig`; ``run()`` returns the result rows (one per run, eval set and metric)."""

    def __init__(self, cfg: AblationConfig, *, log=print) -> None:
        from ..data.io import safe_name
        from ..provenance import commit

        self.cfg, self.log, self.out = cfg, log, Path(cfg.out_dir)
        if not cfg.rows:
            raise ConfigError("rows is empty; list the ablation's rows as {name, set: [key=value, ...]}")
        if not cfg.seeds or not cfg.fractions:
            raise ConfigError("seeds and fractions need at least one value each")
        names = [r.name for r in cfg.rows]
        self.slugs = {r.name: safe_name(r.name) for r in cfg.rows}
        if len(set(names)) != len(names) or len(set(self.slugs.values())) != len(names) or not all(self.slugs.values()):
            raise ConfigError(f"rows need unique names that stay unique as folder names; found {names}")
        self.pairs = [list(p) for p in cfg.compare] or ([[names[-1], names[0]]] if len(names) > 1 else [])
        for p in self.pairs:
            if len(p) != 2 or any(n not in names for n in p):
                raise ConfigError(f"compare: each entry is [row, row] of names in rows ({names}); found {p}")
        ood = [o.name for o in cfg.ood]
        if len(set(ood)) != len(ood):
            raise ConfigError(f"out-of-distribution sets need unique names; found {ood}")
        self.train_device = device_overrides(cfg.device)
        self.score_device = cfg.device or "cpu"
        # every row resolves (and each stage passes the task's checks) before anything trains
        first = None
        for r in cfg.rows:
            c = self.row_config(r, seed=cfg.seeds[0], fraction=cfg.fractions[0])
            self.check(c, r)
            if c.data.split is None:
                raise ConfigError(f"row '{r.name}': its config has no data.split; the ablation needs a fixed split")
            key = (str(Path(c.data.root).resolve()), str(Path(c.data.split).resolve()), c.data.classes)
            if first is not None and key != first[1]:
                raise ConfigError(f"row '{r.name}' reads data {key[0]} with split {key[1]} (classes {key[2]}), but "
                                  f"row '{first[0]}' reads {first[1][0]} with {first[1][1]} (classes {first[1][2]}); "
                                  "every row must be scored on the same test images")
            first = first or (r.name, key)
        self.check_reuse()
        self.seg_base = self.row_config(cfg.rows[0], seed=cfg.seeds[0], fraction=cfg.fractions[0])
        self.rows: list[dict] = []
        self.per_image: dict[tuple, dict[str, float]] = {}  # (row, split, fraction, seed) -> {id: Dice}
        self.runs: dict[str, dict] = {}
        self.units: dict[str, str] = {}
        self.commit = commit()

    # --- configs ------------------------------------------------------------------------------------------
    def run_dir(self, row: AblationRow, fraction: float, seed: int) -> Path:
        return self.out / "runs" / self.slugs[row.name] / f"frac{fraction:g}_seed{seed}"

    def row_config(self, row: AblationRow, *, seed: int, fraction: float):
        """The segmentation config of one run of ``row`` (see the module docstring for the override rules)."""
        from ..config import SegmentConfig, apply_overrides, build, read_yaml

        path = row.base or self.cfg.base
        data = read_yaml(path)
        if data.get("task", "segment") != "segment":
            raise ConfigError(f"row '{row.name}': '{path}' is a '{data['task']}' config; the ablation trains "
                              "segmentation configs")
        if row.stages is not None:  # first, so that an override naming a dropped stage is an error
            by_name = {s.get("name", "stage"): s for s in data.get("stages") or [] if isinstance(s, dict)}
            missing = [n for n in row.stages if n not in by_name]
            if missing:
                raise ConfigError(f"row '{row.name}': stages {missing} are not stages of '{path}' "
                                  f"(it has {list(by_name) or 'none'})")
            data["stages"] = [by_name[n] for n in row.stages]
        auto = [f"seed={seed}", f"data.fraction={fraction}", f"out_dir={self.run_dir(row, fraction, seed)}",
                f"name={self.slugs[row.name]}", "trainer.progress=lines", *self.train_device]
        try:  # in order, a later one winning; each reaches the stages that set its key (STAGE:key: one stage)
            apply_overrides(data, [*self.cfg.set, *row.set, *auto])
        except ConfigError as e:
            raise ConfigError(f"row '{row.name}': {e}") from None
        return build(SegmentConfig, data, source=f"{path} (row '{row.name}')")

    @staticmethod
    def check(cfg, row: AblationRow) -> None:
        """The task's data-free checks (model keys, losses) on the config of every stage."""
        from ..config import build, to_dict
        from ..runs import builder

        check = getattr(builder("segment"), "check", None)
        if check is None:
            return
        plain = {**to_dict(cfg), "stages": []}
        for st in cfg.stages or [None]:
            c = build(type(cfg), json.loads(json.dumps(plain)), st.set if st else None,
                      source=f"row '{row.name}'" + (f", stage '{st.name}'" if st else ""))
            check(c)

    def check_reuse(self) -> None:
        names = [r.name for r in self.cfg.rows]
        for i, r in enumerate(self.cfg.rows):
            for stage, src in r.reuse.items():
                if src not in names[:i]:
                    raise ConfigError(f"row '{r.name}': reuse {{{stage}: {src}}} needs '{src}' to be a row listed "
                                      f"before it (rows: {names})")
                for row in (r, self.cfg.rows[names.index(src)]):
                    have = [s.name for s in self.row_config(row, seed=self.cfg.seeds[0],
                                                            fraction=self.cfg.fractions[0]).stages or []]
                    if stage not in have:
                        raise ConfigError(f"row '{r.name}': reuse {{{stage}: {src}}}: row '{row.name}' has no stage "
                                          f"'{stage}' (its stages: {have or 'none'})")

    @staticmethod
    def stage_settings(cfg, stage: str) -> dict[str, object]:
        """The flattened settings a stage of ``cfg`` trains with (folder, name and init left out)."""
        from ..config import apply_overrides, to_dict

        st = next(s for s in cfg.stages if s.name == stage)
        data = apply_overrides({**to_dict(cfg), "stages": []}, dict(st.set))
        flat: dict[str, object] = {}

        def walk(x, key=""):
            if isinstance(x, dict) and x:
                for k, v in x.items():
                    walk(v, f"{key}.{k}" if key else str(k))
            else:
                flat[key] = x
        walk(data)
        return {k: v for k, v in flat.items() if k not in ("out_dir", "name") and not k.startswith("init.")}

    def link_reused(self, row: AblationRow, frac: float, seed: int, cfg) -> dict[str, dict]:
        """Link each stage ``row`` reuses to the earlier row's finished stage; returns what differs."""
        import os

        out = {}
        for stage, src in row.reuse.items():
            src_row = next(r for r in self.cfg.rows if r.name == src)
            target = self.run_dir(src_row, frac, seed) / stage
            info = target / "run.json"
            if not (info.exists() and json.loads(info.read_text()).get("status") == "finished"):
                raise ConfigError(f"row '{row.name}' reuses stage '{stage}' of row '{src}', whose run {target} has "
                                  "not finished training; run the ablation with that row first")
            link = self.run_dir(row, frac, seed) / stage
            if link.is_symlink() or link.exists():
                if link.resolve() != target.resolve():
                    raise ConfigError(f"row '{row.name}' reuses stage '{stage}' of row '{src}', but {link} already "
                                      f"holds another run; remove it or drop the reuse")
            else:
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.path.relpath(target, link.parent), link, target_is_directory=True)
            mine = self.stage_settings(cfg, stage)
            theirs = self.stage_settings(self.row_config(src_row, seed=seed, fraction=frac), stage)
            diff = {k: [theirs.get(k), mine.get(k)] for k in sorted(set(mine) | set(theirs))
                    if mine.get(k) != theirs.get(k)}
            out[stage] = {"row": src, "differs": diff}
            self.log(f"{row.name} seed {seed}: stage '{stage}' reused from '{src}'"
                     + (f"; settings that differ ({src} -> this row): "
                        + ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in diff.items()) if diff else ""))
        return out

    # --- the runs -----------------------------------------------------------------------------------------
    def run(self, *, train: bool = True) -> list[dict]:
        """Train and score every run; with ``train=False`` only collect (and score) finished runs."""
        self.out.mkdir(parents=True, exist_ok=True)
        sets = eval_sets(self.seg_base.data, self.cfg.ood, self.out)
        for row in self.cfg.rows:
            for frac in self.cfg.fractions:
                for seed in self.cfg.seeds:
                    run = self.run_dir(row, frac, seed)
                    done = (run / "eval" / "time.json").exists()
                    if not train and not done:
                        continue
                    cfg = self.row_config(row, seed=seed, fraction=frac)
                    reused = self.link_reused(row, frac, seed, cfg) if row.reuse else {}
                    if not done:
                        self.log(f"{row.name} fraction {frac:g} seed {seed}: training in {run}")
                    evs = train_and_score(cfg, run, eval_sets=sets, device=self.score_device, log=self.log,
                                          prefix=f"  {self.slugs[row.name]} {frac:g} s{seed} ")
                    self.collect(row, frac, seed, cfg, run, sets, evs, reused)
                    self.write()
        self.write(report=True)
        return self.rows

    def collect(self, row, frac, seed, cfg, run: Path, sets, evs, reused=None) -> None:
        secs = json.loads((run / "eval" / "time.json").read_text())["seconds"]
        final = scored_run(cfg, run)
        info = json.loads((final / "run.json").read_text()) if (final / "run.json").exists() else {}
        self.runs[f"{row.name}|{frac:g}|{seed}"] = {"folder": str(final), "seconds": round(secs, 1),
                                                    "parameters": info.get("parameters"),
                                                    **({"reused_stages": reused} if reused else {})}
        for es in sets:
            ev = evs[es["name"]]
            self.units[es["name"]] = ev.get("hd95_unit", "px")
            self.per_image[(row.name, es["name"], frac, seed)] = {str(r["id"]): float(r["dice"]) for r in ev["rows"]}
            for m in METRICS:
                self.rows.append({"row": row.name, "dataset": es["dataset"], "split": es["name"], "fraction": frac,
                                  "seed": seed, "metric": m, "value": ev["aggregate"][m]["mean"], "n": ev["n"],
                                  "seconds": round(secs, 1), "commit": self.commit})
        self.log(f"{row.name} fraction {frac:g} seed {seed}: " + ", ".join(
            f"{es['name']} Dice {evs[es['name']]['aggregate']['dice']['mean']:.4f}" for es in sets))

    # --- results ------------------------------------------------------------------------------------------
    def values(self, row: str, split: str, frac: float, metric: str) -> np.ndarray:
        return np.array([r["value"] for r in self.rows if r["row"] == row and r["split"] == split
                         and r["fraction"] == frac and r["metric"] == metric], dtype=float)

    def table(self) -> tuple[list[str], list[list]]:
        from ..reports.tables import fmt_mean_std

        splits = list(dict.fromkeys(r["split"] for r in self.rows))
        units = sorted({self.units.get(s, "px") for s in splits})
        hd = f"HD95 ({units[0]})" if len(units) == 1 else "HD95"
        header = ["row", "evaluated on", "labels", *[hd if m == "hd95" else t for m, t, _ in COLUMNS],
                  "Dice vs first row", "seeds"]
        first = self.cfg.rows[0].name
        out = []
        for split in splits:
            for frac in self.cfg.fractions:
                for row in self.cfg.rows:
                    cells = []
                    for m, _, digits in COLUMNS:
                        v = self.values(row.name, split, frac, m)
                        v = v[np.isfinite(v)]
                        cells.append(fmt_mean_std(float(v.mean()) if v.size else float("nan"),
                                                  float(v.std(ddof=1)) if v.size > 1 else 0.0, digits, n=v.size))
                    d, base = self.values(row.name, split, frac, "dice"), self.values(first, split, frac, "dice")
                    if not d.size:
                        continue
                    gain = f"{100 * (d.mean() - base.mean()):+.1f} pts" if base.size and row.name != first else "—"
                    out.append([row.name, split, f"{100 * frac:g}%", *cells, gain, d.size])
        return header, out

    def comparisons(self) -> list[dict]:
        """The paired per-image Dice comparisons (a - b) of :attr:`pairs`, per eval set and fraction: each
        image's Dice averaged over the seeds both rows have, then :func:`~sonokit.evaluation.paired.paired_bootstrap`."""
        from ..evaluation.paired import mean_per_image, paired_bootstrap

        out = []
        splits = list(dict.fromkeys(r["split"] for r in self.rows))
        for a, b in self.pairs:
            for split in splits:
                for frac in self.cfg.fractions:
                    seeds = [s for s in self.cfg.seeds if (a, split, frac, s) in self.per_image
                             and (b, split, frac, s) in self.per_image]
                    if not seeds:
                        continue
                    res = paired_bootstrap(mean_per_image(self.per_image[(a, split, frac, s)] for s in seeds),
                                           mean_per_image(self.per_image[(b, split, frac, s)] for s in seeds),
                                           n_boot=self.cfg.bootstrap, seed=self.cfg.bootstrap_seed)
                    per_seed = [float(np.mean(list(self.per_image[(a, split, frac, s)].values()))
                                      - np.mean(list(self.per_image[(b, split, frac, s)].values()))) for s in seeds]
                    out.append({"a": a, "b": b, "split": split, "fraction": frac, "seeds": seeds,
                                "per_seed_diff": per_seed, **res})
        return out

    def write(self, report: bool = False) -> None:
        from ..provenance import machine
        from ..reports.tables import html_table, markdown_table

        header, rows = self.table()
        comps = self.comparisons()
        c_header = ["comparison (a − b)", "evaluated on", "labels", "seeds", "images", "mean Dice difference",
                    "95% CI", "per seed", "a higher / lower"]
        c_rows = [[f"{c['a']} − {c['b']}", c["split"], f"{100 * c['fraction']:g}%", len(c["seeds"]), c["n"],
                   f"{100 * c['diff']:+.1f} pts", f"{100 * c['ci'][0]:+.1f} to {100 * c['ci'][1]:+.1f}",
                   ", ".join(f"{100 * d:+.1f}" for d in c["per_seed_diff"]), f"{c['wins']} / {c['losses']}"]
                  for c in comps]
        per_image = {}
        for (row, split, frac, seed), v in self.per_image.items():
            per_image.setdefault(row, {}).setdefault(split, {}).setdefault(f"{frac:g}", {})[str(seed)] = v
        doc = {"experiment": "ablation", "config": dataclasses.asdict(self.cfg), "commit": self.commit,
               "machine": machine(), "rows": self.rows, "runs": self.runs, "comparisons": comps,
               "per_image_dice": per_image}
        (self.out / "results.json").write_text(json.dumps(doc, indent=1))
        md = [f"# Ablation: {self.cfg.name}\n",
              "Each metric: mean ± std over seeds of the run's mean per-image value on the held-out images "
              "('test': the test part of the split; 'ood_*': out-of-distribution sets); checkpoints chosen on val; "
              "(n = 1): one seed, no spread. HD95 over the images where it is defined. 'Dice vs first row': "
              f"difference of mean Dice to '{self.cfg.rows[0].name}', in Dice points.\n",
              markdown_table(header, rows)]
        if c_rows:
            md += ["## Paired per-image comparisons\n",
                   "Each image's Dice averaged over the seeds both rows have; mean difference a − b over the same "
                   f"images with a percentile bootstrap 95% CI ({self.cfg.bootstrap} resamples of the "
                   f"images, seed {self.cfg.bootstrap_seed}); 'per seed': difference of the runs' mean Dice, seed by "
                   "seed; in Dice points.\n", markdown_table(c_header, c_rows)]
        (self.out / "results.md").write_text("\n".join(md))
        if report:
            from ..reports.html import build_report

            extra = ["<h2>Ablation</h2>", html_table(header, rows)]
            if c_rows:
                extra += ["<h3>Paired per-image comparisons (Dice points)</h3>", html_table(c_header, c_rows)]
            build_report(self.out, self.out / "report.html", title=f"sonokit ablation: {self.cfg.name}",
                         extra_html=extra, galleries=self.galleries())

    def galleries(self) -> list[tuple[Path, str, str]]:
        """One gallery per row: its run at the largest fraction and the lowest seed, on the test split."""
        frac, seed = max(self.cfg.fractions), min(self.cfg.seeds)
        out = []
        for r in self.cfg.rows:
            run = self.runs.get(f"{r.name}|{frac:g}|{seed}")
            if run and (Path(run["folder"]) / "eval" / "test.json").exists():
                out.append((Path(run["folder"]), "test", f"{r.name}, {100 * frac:g}% labels, seed {seed}: test cases"))
        return out
