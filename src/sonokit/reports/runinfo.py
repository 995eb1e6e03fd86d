"""What a report knows about one run folder: its config, run record, data record and evaluations, and the
header that names them (run name and seed, task, config file, checkpoint and split file of every evaluation).

A run folder (``sonokit train`` / ``sonokit pretrain``) holds ``config.yaml``, ``run.json``, ``data.json``,
``metrics.csv`` and ``eval/<name>.json``; any of them but ``config.yaml`` may be missing (an interrupted run,
a run never evaluated), and the report says so instead of failing.
"""
from __future__ import annotations

import html
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

EVAL_TASKS = ("segment", "classify")


@dataclass
class Run:
    """One run folder as the report reads it. ``evals`` are the evaluation results (``eval/*.json`` that are
    evaluations: ``task`` segment or classify), each with ``_file``, the path it was read from."""
    path: Path
    rel: str  # the folder relative to the report's root ('.' for the root itself)
    config: dict
    info: dict = field(default_factory=dict)  # run.json
    data: dict = field(default_factory=dict)  # data.json
    evals: list[dict] = field(default_factory=list)
    label: str = ""  # "<config name>, seed <seed>" (made unique among the report's runs)

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.info.get("name") or self.path.name)

    @property
    def seed(self):
        return self.config.get("seed")

    @property
    def task(self) -> str:
        return str(self.config.get("task") or self.info.get("task") or "?")

    @property
    def group(self) -> str:
        """The folder holding this run, relative to the report's root (runs of one sweep share it)."""
        parent = Path(self.rel).parent.as_posix()
        return "" if parent in (".", "") or self.rel == "." else parent


def _read_json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def eval_task(ev: dict) -> str | None:
    """``segment`` / ``classify`` for an evaluation result, None for other json files in ``eval/`` (time.json)."""
    task = ev.get("task") or ("segment" if "aggregate" in ev else None)
    ok = {"segment": "aggregate" in ev and "rows" in ev, "classify": "metrics" in ev and "confusion" in ev}
    return task if ok.get(task) else None


def load_run(path: Path, root: Path) -> Run:
    import yaml

    try:
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    rel = path.relative_to(root).as_posix() if path != root else "."
    run = Run(path, rel, config if isinstance(config, dict) else {}, _read_json(path / "run.json"),
              _read_json(path / "data.json"))
    for ej in sorted((path / "eval").glob("*.json")) if (path / "eval").is_dir() else []:
        ev = _read_json(ej)
        if eval_task(ev):
            ev.setdefault("name", ej.stem)
            run.evals.append({**ev, "_file": str(ej)})
    return run


def load_runs(paths: list[Path], root: Path) -> list[Run]:
    """Read every run folder; labels are ``<name>, seed <seed>``, with the folder added where two runs would
    otherwise share a label."""
    runs = [load_run(p, root) for p in paths]
    for r in runs:
        r.label = r.name if r.seed is None else f"{r.name}, seed {r.seed}"
    counts = Counter(r.label for r in runs)
    for r in runs:
        if counts[r.label] > 1:
            r.label = f"{r.label} [{r.rel}]"
    return runs


def split_hash(path: str | None, trained: dict) -> tuple[str | None, str]:
    """The content hash of split file ``path`` and a note comparing it with the hash the run was trained with
    (``data.json``'s ``split_hash``)."""
    from ..data.splits import content_hash

    if not path:
        return None, ""
    p = Path(path)
    try:
        h = content_hash(json.loads(p.read_text()))
    except (OSError, ValueError, AttributeError):  # missing, not JSON, not a split
        return trained.get("split_hash") if trained.get("split") == path else None, "file not readable now"
    if trained.get("split_hash") and trained.get("split") and Path(trained["split"]) == p:
        return h, "as in training" if h == trained["split_hash"] else (
            f"CHANGED since training (trained with {trained['split_hash'][:12]})")
    return h, ""


def _code(s) -> str:
    return f"<code>{html.escape(str(s))}</code>"


def _hash(h: str | None) -> str:
    return f"<code title='{html.escape(h)}'>{html.escape(h[:12])}</code>" if h else "no hash"


def checkpoint_cell(ev: dict, run: Run) -> str:
    ck = ev.get("checkpoint")
    if not ck:
        return "not recorded in the evaluation"
    p = Path(ck)
    try:
        shown = p.resolve().relative_to(run.path.resolve()).as_posix()
    except ValueError:
        shown = str(p)
    return _code(shown) + ("" if p.exists() else " (no longer there)")


def _link(target: Path, out_dir: Path) -> str:
    return os.path.relpath(target.resolve(), out_dir.resolve()).replace(os.sep, "/")


def run_header(run: Run, out_dir: Path) -> str:
    """The header of one run: name, task, status, config (link + collapsible text), data and split, and the
    checkpoint, split file and data warnings of each evaluation."""
    info, data = run.info, run.data
    status = [info.get("status", "no run.json")]
    if info.get("epochs") is not None:
        status.append(f"{info['epochs']} epochs")
    if info.get("seconds") is not None:
        status.append(f"{info['seconds']:.0f} s")
    if info.get("commit"):
        status.append(f"commit {info['commit']}")
    cfg_path = run.path / "config.yaml"
    try:
        cfg_text = cfg_path.read_text()
    except OSError:
        cfg_text = "(unreadable)"
    rows = [("task", f"{html.escape(run.task)} ({html.escape(', '.join(map(str, status)))})"),
            ("folder", _code(run.rel if run.rel != "." else run.path.name)),
            ("config", f"<a href='{html.escape(_link(cfg_path, out_dir))}'>{html.escape(str(cfg_path))}</a>"
                       f"<details><summary>config.yaml</summary><pre>{html.escape(cfg_text)}</pre></details>")]
    if data:
        split = data.get("split")
        counts = ", ".join(f"{k} {data[k]}" for k in ("train", "val") if data.get(k) is not None)
        rows.append(("data", f"{_code(data.get('root', '?'))} ({html.escape(str(data.get('dataset', '?')))})"
                             + (f"; {counts} images" if counts else "")))
        if split and data.get("split_hash"):
            rows.append(("split file", f"{_code(split)}, hash {_hash(data['split_hash'])}"))
        elif split:  # not recorded in data.json (pretraining runs): the file's hash now
            now, note = split_hash(split, {})
            rows.append(("split file", f"{_code(split)}, hash {_hash(now)} "
                                       f"({html.escape(note or 'of the file now; the run did not record one')})"))
        else:
            rows.append(("split file", "none"))
        if data.get("skipped"):
            rows.append(("skipped in training", f"{len(data['skipped'])} images"))
    for ev in run.evals:
        h, note = split_hash(ev.get("split_file"), data)
        split = (f"{_code(ev['split_file'])}, hash {_hash(h)}" + (f" ({html.escape(note)})" if note else "")
                 if ev.get("split_file") else "none (every image)" if ev.get("part") == "all" else "not recorded")
        cell = (f"{ev.get('n', '?')} images of {_code(ev.get('data_root', '?'))}"
                + (f", part {html.escape(str(ev['part']))}" if ev.get("part") else "")
                + f"<br>checkpoint {checkpoint_cell(ev, run)}<br>split file {split}")
        warns = list(ev.get("data_warnings") or [])
        if ev.get("skipped"):
            warns.append(f"{len(ev['skipped'])} images skipped, e.g. {ev['skipped'][0].get('id')}: "
                         f"{ev['skipped'][0].get('error')}")
        if warns:
            cell += "".join(f"<div class='warn'>data warning: {html.escape(str(w))}</div>" for w in warns)
        rows.append((f"evaluation '{html.escape(str(ev['name']))}'", cell))
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return (f"<section class='run'><h3 id='run-{html.escape(run.rel)}'>{html.escape(run.label)}</h3>"
            f"<table class='meta'>{body}</table></section>")
