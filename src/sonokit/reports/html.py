"""`sonokit report RUN_DIR`: one self-contained HTML file (figures embedded as PNG data URIs).

For a run folder or a folder of runs (any depth), in order:

* a header per run (:func:`sonokit.reports.runinfo.run_header`): run name and seed, task, status, its config
  file (path, link and the text, collapsed), its data and split file with hash, and for each evaluation the
  checkpoint it scored, its split file and hash, and any data warning;
* metrics tables by task (:mod:`sonokit.reports.results`): segmentation mean ± std over images; classification
  accuracy, balanced accuracy, AUROC, per-class recall and confusion matrices; mean ± std over the runs of
  one configuration, ``(n = 1)`` for one run;
* training curves (:mod:`sonokit.reports.curves`): one figure per task and sweep folder, labelled by run name
  and seed; pretraining in figures of its own;
* galleries (:mod:`sonokit.reports.gallery`): best, median and worst test cases as rows of image | ground truth
  | prediction, one gallery per configuration by default, or those the caller names; for an evaluation written
  with ``--save-uncertainty``, the same cases as image | uncertainty heat-map | FP / FN maps
  (:mod:`sonokit.reports.uncertainty`).
"""
from __future__ import annotations

import datetime as _dt
import html
from pathlib import Path

from ..errors import DataError

_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1150px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
table.meta th{text-align:left;vertical-align:top;white-space:nowrap}table.meta td{text-align:left}
.run{border-left:3px solid #8ab;padding-left:1em;margin:1.5em 0}.run h3{margin-bottom:.2em}
details pre{background:#f7f7f7;padding:.5em;max-height:30em;overflow:auto;font-size:12px}
.warn{color:#a40;font-weight:600}.gallery{display:flex;flex-wrap:wrap;gap:12px}.gallery figure{margin:0}
figcaption{font-size:12px;color:#555}figure.curves{margin:1em 0}
.case{margin:.6em 0}.case p{margin:.2em 0;font-size:13px}.panels{display:flex;gap:6px}
.panels figure{margin:0;text-align:center}.panels img{width:200px;height:auto}"""
MANY_RUNS = 4  # more runs than this: the run headers go to the end of the page


def find_runs(root: Path) -> list[Path]:
    """Run folders (holding config.yaml) at or below ``root``; the root of a multi-stage run (its config.yaml
    lists ``stages``) is left out, its stages' folders are the runs."""
    import yaml

    def staged(cfg: Path) -> bool:
        try:
            data = yaml.safe_load(cfg.read_text())
        except (OSError, yaml.YAMLError):
            return False
        return isinstance(data, dict) and bool(data.get("stages")) and not (cfg.parent / "run.json").exists()

    return sorted({p.parent for p in Path(root).rglob("config.yaml") if not staged(p)})


def default_galleries(runs) -> list[tuple]:
    """One gallery per configuration (config ``name``) with a segmentation evaluation: its run of the lowest
    seed, evaluation 'test' where there is one (else its first). At most 6."""
    from .runinfo import eval_task

    best: dict[str, tuple] = {}
    for r in runs:
        seg = [ev for ev in r.evals if eval_task(ev) == "segment"]
        if not seg:
            continue
        ev = next((e for e in seg if e["name"] == "test"), seg[0])
        key = (str(r.seed) if r.seed is not None else "", r.rel)
        if r.name not in best or key < best[r.name][0]:
            best[r.name] = (key, r, ev)
    return [(r, ev, f"{r.label}, evaluation {ev['name']}") for _, r, ev in list(best.values())[:6]]


def _named_galleries(runs, galleries) -> list[tuple]:
    by_path = {r.path.resolve(): r for r in runs}
    out = []
    for run_path, eval_name, title in galleries:
        r = by_path.get(Path(run_path).resolve())
        ev = next((e for e in (r.evals if r else []) if e["name"] == eval_name), None)
        if ev is not None:
            out.append((r, ev, title))
    return out


def build_report(run_dir: str | Path, out: str | Path | None = None, *, title: str | None = None,
                 extra_html: list[str] | None = None,
                 galleries: list[tuple[str | Path, str, str]] | None = None) -> Path:
    """Write ``report.html`` for a run folder (or a folder of runs) and return its path.

    ``extra_html``: fragments placed after the title (an experiment's own tables). ``galleries``: the
    galleries to show as ``(run folder, evaluation name, title)``; default one per configuration."""
    from .curves import curve_figures
    from .gallery import gallery_section
    from .results import classification_section, segmentation_section
    from .runinfo import load_runs, run_header
    from .uncertainty import uncertainty_section

    root = Path(run_dir)
    if not root.is_dir():
        raise DataError(f"run folder '{root}' does not exist")
    paths = find_runs(root)
    if not paths:
        raise DataError(f"no runs (folders with config.yaml) under '{root}'; expected the --out folder of `sonokit train`")
    out_path = Path(out) if out else root / "report.html"
    runs = load_runs(paths, root)
    tasks = sorted({r.task for r in runs})
    sections = [f"<h1>{html.escape(title or 'sonokit report: ' + root.name)}</h1>",
                f"<p>Generated {_dt.datetime.now().isoformat(timespec='seconds')} from <code>{html.escape(str(root))}"
                f"</code>: {len(runs)} run(s), task {', '.join(map(html.escape, tasks))}.</p>"]
    headers = "<h2 id='runs'>Runs</h2>" + "".join(run_header(r, out_path.parent) for r in runs)
    if len(runs) <= MANY_RUNS:
        sections.append(headers)
    else:
        sections.append("<p>Each run's config, checkpoints and split files: <a href='#runs'>Runs</a>, at the end.</p>")
    sections += list(extra_html or [])
    metrics = segmentation_section(runs) + classification_section(runs)
    sections.append(metrics or "<h2>Metrics</h2><p>No evaluations yet: run <code>sonokit evaluate</code>.</p>")
    figs = curve_figures(runs)
    if figs:
        sections.append("<h2>Training curves</h2>" + "".join(
            f"<figure class='curves'><img src='{f['src']}' alt='{html.escape(f['alt'])}'>"
            f"<figcaption>{html.escape(f['title'])}; runs: {html.escape('; '.join(f['labels']))}</figcaption></figure>"
            for f in figs))
    chosen = _named_galleries(runs, galleries) if galleries is not None else default_galleries(runs)
    if chosen:
        sections.append("<h2>Gallery</h2>" + "".join(gallery_section(ev, f"Gallery: {t}")
                                                     + uncertainty_section(ev, f"Uncertainty: {t}")
                                                     for _, ev, t in chosen))
    if len(runs) > MANY_RUNS:
        sections.append(headers)
    return write_page(out_path, "sonokit report", sections)


def write_page(path: str | Path, title: str, sections: list[str]) -> Path:
    """Write one self-contained HTML page (sonokit's style) from HTML fragments; returns its path."""
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_CSS}</style>"
            f"</head><body>{''.join(sections)}</body></html>")
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path
