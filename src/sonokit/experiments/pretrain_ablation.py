"""A pretraining ablation (A-ViT's, ICLR 2026: ViT from scratch -> MIM -> + ACDT -> + adversarial -> + self-
distillation, λ fixed vs adaptive): each row pretrains an encoder once, then every downstream task fine-tunes
(or linear-probes) it for each seed and scores it on the held-out test split.

* A **row** is the base pretraining config (``pretrain``) with the row's ``set`` overrides (as ``--set``), trained
  in ``out_dir/pretrain/<row>``; ``pretrain: false`` skips pretraining (the row's encoder from random
  initialisation: "from scratch").
* A **downstream** task is a classification or segmentation config with its own ``set`` (e.g.
  ``linear_probe=true``) and optionally ``rows`` (run for those rows only, e.g. a second dataset for the first
  and last row); the run's encoder becomes the row's: ``model.encoder`` = the pretraining encoder's
  name, ``model.encoder_kwargs`` = its other arguments, ``model.encoder_checkpoint`` = the row's
  ``encoder.safetensors`` (null from scratch). Trained in ``out_dir/downstream/<row>/<task>/seed<s>``,
  checkpoint chosen on val, scored once on the test split with :func:`sonokit.evaluate`.
* **Organs** (``organs``): each run is scored with the dataset's own organ (``dataset``), and optionally with the
  organ predicted by the model (``predicted``) and a wrong one (any vocabulary name, e.g. ``heart``): the
  organ-conditioning check. Only anatomy-conditioned encoders read the organ; for others the modes coincide
  and only ``dataset`` is scored.

Finished pretraining (``encoder.safetensors``) and downstream runs (their ``eval/<name>.json``) are kept:
rerunning resumes. Output: ``results.json`` (one row per row / task / seed / organ mode / metric) and
``results.md`` (mean ± std over seeds).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError

TASK_METRICS = {"classify": ("accuracy", "balanced_accuracy", "auroc"), "segment": ("dice", "iou")}


@dataclass
class PretrainRow:
    name: str = "row"
    set: list[str] = field(default_factory=list)  # overrides of the pretraining config
    pretrain: bool = True  # false: no pretraining, the row's encoder from random initialisation


@dataclass
class DownstreamTask:
    name: str = "task"
    config: str = "configs/classify_busi_cpu.yaml"  # a classify or segment config
    set: list[str] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)  # only these rows (names); empty: every row


@dataclass
class PretrainAblationConfig:
    name: str = "pretrain_ablation"
    out_dir: str = "runs/pretrain_ablation"
    pretrain: str = "configs/avit_cpu.yaml"
    rows: list[PretrainRow] = field(default_factory=list)
    downstream: list[DownstreamTask] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    organs: list[str] = field(default_factory=lambda: ["dataset"])  # dataset | predicted | an organ name


class PretrainAblation:
    def __init__(self, cfg: PretrainAblationConfig, *, log=print) -> None:
        from ..data.io import safe_name

        self.cfg, self.log, self.out = cfg, log, Path(cfg.out_dir)
        if not cfg.rows or not cfg.downstream or not cfg.seeds:
            raise ConfigError("a pretraining ablation needs rows, downstream tasks and seeds")
        self.slugs = {r.name: safe_name(r.name) for r in cfg.rows} | {t.name: safe_name(t.name) for t in cfg.downstream}
        for what, names in (("rows", [r.name for r in cfg.rows]), ("downstream", [t.name for t in cfg.downstream])):
            if len(set(names)) != len(names) or len({self.slugs[n] for n in names}) != len(names):
                raise ConfigError(f"{what} need unique names that stay unique as folder names; found {names}")
        for t in cfg.downstream:
            unknown = sorted(set(t.rows) - {r.name for r in cfg.rows})
            if unknown:
                raise ConfigError(f"downstream '{t.name}': rows {unknown} are not rows of this ablation "
                                  f"({[r.name for r in cfg.rows]})")
        if "dataset" not in cfg.organs:
            raise ConfigError(f"organs must include 'dataset' (the reference score); found {cfg.organs}")
        self.results: list[dict] = []
        from ..provenance import commit

        self.commit = commit()  # the code this process runs, recorded once (the checkout may change meanwhile)
        for r in cfg.rows:  # every config resolves and passes the data-free checks before anything trains
            pc = self.pretrain_config(r)
            for t in self.tasks(r):
                self.downstream_config(r, t, pc, cfg.seeds[0])

    # --- configs ------------------------------------------------------------------------------------------
    def pretrain_config(self, row: PretrainRow):
        from ..config import PretrainConfig, load_config
        from ..runs.pretrain import check_method

        try:
            cfg = load_config(self.cfg.pretrain, [*row.set, f"out_dir={self.out / 'pretrain' / self.slugs[row.name]}",
                                                  f"name={self.slugs[row.name]}", "trainer.progress=lines"],
                              cls=PretrainConfig)
            check_method(cfg)
        except ConfigError as e:
            raise ConfigError(f"row '{row.name}': {e}") from None
        return cfg

    def downstream_config(self, row: PretrainRow, task: DownstreamTask, pcfg, seed: int):
        from ..config import load_config, read_yaml
        from ..runs import builder

        enc = {k: v for k, v in dict(pcfg.encoder).items() if k not in ("name", "img_size", "in_chans")}
        ckpt = str(Path(pcfg.out_dir) / "encoder.safetensors") if row.pretrain else None
        kind = read_yaml(task.config).get("task")
        if kind not in TASK_METRICS:
            raise ConfigError(f"downstream '{task.name}': '{task.config}' is a '{kind}' config; expected classify "
                              "or segment")
        run = self.out / "downstream" / self.slugs[row.name] / self.slugs[task.name] / f"seed{seed}"
        over = [*task.set, f"model.encoder={pcfg.encoder['name']}", f"model.encoder_kwargs={json.dumps(enc)}",
                f"model.encoder_checkpoint={json.dumps(ckpt)}", f"seed={seed}", f"out_dir={run}",
                f"name={self.slugs[row.name]}_{self.slugs[task.name]}", "trainer.progress=lines"]
        try:
            cfg = load_config(task.config, over, task=kind)
            check = getattr(builder(kind), "check", None)
            if check is not None:
                check(cfg)
        except ConfigError as e:
            raise ConfigError(f"row '{row.name}', downstream '{task.name}': {e}") from None
        if pcfg.data.image_size != cfg.data.image_size:
            raise ConfigError(f"row '{row.name}', downstream '{task.name}': pretraining at {pcfg.data.image_size} px "
                              f"but the downstream config trains at {cfg.data.image_size} px; use one size")
        return cfg, kind

    # --- running ------------------------------------------------------------------------------------------
    def pretrain(self, row: PretrainRow) -> None:
        from ..runs import fit

        cfg = self.pretrain_config(row)
        out = Path(cfg.out_dir)
        if not row.pretrain or (out / "encoder.safetensors").exists():
            return
        self.log(f"{row.name}: pretraining in {out}")
        fit(cfg, resume=(out / "checkpoints" / "last.ckpt").exists(), log=self.log, prefix=f"  {self.slugs[row.name]} ")

    def downstream(self, row: PretrainRow, task: DownstreamTask, seed: int) -> None:
        from ..evaluation import evaluate
        from ..runs import fit

        cfg, kind = self.downstream_config(row, task, self.pretrain_config(row), seed)
        run = Path(cfg.out_dir)
        if not self.finished(run):
            self.log(f"{row.name} / {task.name} seed {seed}: training in {run}")
            fit(cfg, resume=(run / "checkpoints" / "last.ckpt").exists(), log=self.log,
                prefix=f"  {self.slugs[row.name]} {self.slugs[task.name]} s{seed} ")
        reads_organ = "organ" in self.reads(run)
        for mode in self.cfg.organs if reads_organ else ["dataset"]:
            name = "test" if mode == "dataset" else f"test_organ_{mode}"
            if not (run / "eval" / f"{name}.json").exists():  # evaluate() writes it
                evaluate(run / "checkpoints" / "best.ckpt", split="test", name=name, log=None,
                         organ=None if mode == "predicted" else mode if mode != "dataset"
                         else ("dataset" if reads_organ else None))

    def tasks(self, row: PretrainRow) -> list[DownstreamTask]:
        """The downstream tasks of ``row`` (a task's ``rows`` limits it to those rows)."""
        return [t for t in self.cfg.downstream if not t.rows or row.name in t.rows]

    @staticmethod
    def finished(run: Path) -> bool:
        info = run / "run.json"
        return info.exists() and json.loads(info.read_text()).get("status") == "finished"

    def collect(self) -> list[dict]:
        """Every score on disk, of every row (also those another process trains: ``run(rows=...)``), in the
        config's order; a run counts once it has finished and been scored."""
        from ..config import read_yaml

        out = []
        for row in self.cfg.rows:
            for task in self.tasks(row):
                kind = read_yaml(task.config).get("task")
                for seed in self.cfg.seeds:
                    run = self.out / "downstream" / self.slugs[row.name] / self.slugs[task.name] / f"seed{seed}"
                    if not self.finished(run):
                        continue
                    info = json.loads((run / "run.json").read_text())
                    for mode in self.cfg.organs:
                        path = run / "eval" / ("test.json" if mode == "dataset" else f"test_organ_{mode}.json")
                        if not path.exists():
                            continue
                        res = json.loads(path.read_text())
                        values = res.get("metrics") or {k: v["mean"] for k, v in res.get("aggregate", {}).items()}
                        out += [{"row": row.name, "task": task.name, "seed": seed, "organ": mode, "metric": m,
                                 "value": float(values[m]), "n": res["n"], "commit": info.get("commit"),
                                 "seconds": info.get("seconds")} for m in TASK_METRICS[kind]]
        return out

    @staticmethod
    def reads(run: Path) -> tuple[str, ...]:
        """The batch inputs the run's model reads (rebuilt from its checkpoint)."""
        from ..inference import read_task_checkpoint
        from ..inference.checkpoint import build_model

        path = run / "checkpoints" / "best.ckpt"
        return tuple(getattr(build_model(read_task_checkpoint(path), path), "batch_inputs", ()))

    def run(self, rows: list[str] | None = None, tasks: list[str] | None = None) -> list[dict]:
        """Pretrain and run the downstream tasks of every row, or of ``rows`` / ``tasks`` (names) only: two
        processes can share one ablation (by rows, or by tasks once the rows are pretrained); each write
        collects every finished score on disk."""
        for what, given, known in (("rows", rows, [r.name for r in self.cfg.rows]),
                                   ("downstream tasks", tasks, [t.name for t in self.cfg.downstream])):
            unknown = sorted(set(given or ()) - set(known))
            if unknown:
                raise ConfigError(f"unknown {what} {unknown}; this ablation has {known}")
        self.out.mkdir(parents=True, exist_ok=True)
        for row in self.cfg.rows:
            if rows and row.name not in rows:
                continue
            self.pretrain(row)
            for task in (t for t in self.tasks(row) if not tasks or t.name in tasks):
                for seed in self.cfg.seeds:
                    self.downstream(row, task, seed)
                    self.write()
        self.write()
        return self.results

    # --- results ------------------------------------------------------------------------------------------
    def table(self) -> tuple[list[str], list[list]]:
        from ..reports.tables import fmt_mean_std

        header = ["row", "downstream", "organ at test", "metric", "mean ± std", "seeds"]
        out = []
        keys = dict.fromkeys((r["row"], r["task"], r["organ"], r["metric"]) for r in self.results)
        for row, task, organ, metric in keys:
            v = np.array([r["value"] for r in self.results if (r["row"], r["task"], r["organ"], r["metric"])
                          == (row, task, organ, metric)], dtype=float)
            v = v[np.isfinite(v)]
            cell = fmt_mean_std(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, 3, n=v.size) \
                if v.size else "—"
            out.append([row, task, organ, metric, cell, v.size])
        return header, out

    def write(self) -> None:
        import dataclasses

        from ..data.io import atomic_write
        from ..provenance import machine
        from ..reports.tables import markdown_table

        self.results = self.collect()
        doc = {"experiment": "pretrain_ablation", "config": dataclasses.asdict(self.cfg), "commit": self.commit,
               "machine": machine(), "rows": self.results}
        atomic_write(self.out / "results.json", lambda t: Path(t).write_text(json.dumps(doc, indent=1)))
        header, rows = self.table()
        md = "\n".join([
            f"# Pretraining ablation: {self.cfg.name}\n",
            "Each row pretrains once; each downstream task trains per seed, checkpoint chosen on val, scored once on "
            "the held-out test split; mean ± std over seeds. 'organ at test': the dataset's own organ, the organ "
            "the model predicts, or a wrong one (anatomy-conditioned encoders only).\n", markdown_table(header, rows)])
        atomic_write(self.out / "results.md", lambda t: Path(t).write_text(md))
