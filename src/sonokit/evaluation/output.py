"""Writing an evaluation's results: ``<name>.json`` (the whole result) and ``<name>_per_image.csv`` (one row
per image), both atomically, so an interrupted evaluation never leaves a truncated results file."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..data.io import atomic_write


def write_evaluation(out_dir: str | Path, name: str, result: dict) -> Path:
    """Write ``result`` (with its ``rows``) into ``out_dir``; returns the JSON file's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = json.dumps(result, indent=1, default=float)
    path = atomic_write(out / f"{name}.json", lambda tmp: Path(tmp).write_text(doc))
    rows = result.get("rows") or []
    if rows:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        atomic_write(out / f"{name}_per_image.csv", lambda tmp: Path(tmp).write_text(buf.getvalue()))
    return path
