"""The bench's result cache: every result is stored with the inputs that decide it (its *spec*) and recomputed
when they change; trained models are kept with the config they were trained from."""
from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path
from typing import Callable

import torch

from ...errors import ConfigError


def write_json(path: Path, doc) -> None:
    """Write JSON atomically (a killed run never leaves a truncated cache file)."""
    from ...data.io import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(doc, default=float)))


def normalize_spec(spec: dict) -> dict:
    """``spec`` as it reads back from JSON (tuples -> lists, paths -> strings), so that specs compare equal."""
    return json.loads(json.dumps(spec, default=str))


def file_spec(path: Path) -> dict:
    """A file in a cache key: its path and modification time (None when it does not exist)."""
    p = Path(path)
    return {"path": str(p), "mtime": round(p.stat().st_mtime, 3) if p.exists() else None}


class ResultCache:
    """``get(path, spec, compute)``: ``compute()`` once per ``spec``, stored in ``path`` with the commit, time,
    thread count and device it was computed with; ``last`` is that provenance for the result last returned."""

    def __init__(self, *, commit: str, device: str, log=print) -> None:
        self.commit, self.device, self.log = commit, device, log
        self.last: dict = {}

    def get(self, path: Path, spec: dict, compute: Callable[[], dict]) -> dict:
        """The cached result for ``spec`` (every input that decides it); a cache file whose spec differs is
        recomputed."""
        spec = normalize_spec(spec)
        if path.exists():
            doc = json.loads(path.read_text())
            if isinstance(doc, dict) and doc.get("spec") == spec:
                self.last = doc.get("computed", {})
                return doc["result"]
            self.log(f"{path}: computed with other settings; recomputing")
        result = compute()
        self.last = {"commit": self.commit, "time": _dt.datetime.now().isoformat(timespec="seconds"),
                     "threads": torch.get_num_threads(), "device": self.device}
        write_json(path, {"spec": spec, "result": result, "computed": self.last})
        return result


def train_once(run: Path, spec: dict, name: str, train: Callable[[], object], *, device: str, log=print) -> Path:
    """Train into ``run`` unless a finished run from the same config (``spec``: ``config`` and ``set``) is there;
    best.ckpt's path. A finished run from another config is refused (:class:`ConfigError`).

    ``train_time.json`` records the config and the training seconds (summed over resumed calls)."""
    done = run / "train_time.json"
    if done.exists():
        rec = json.loads(done.read_text())
        if {"config": rec.get("config"), "set": rec.get("set")} != normalize_spec(spec):
            raise ConfigError(f"'{run}' holds '{name}' trained from {rec.get('config')} {rec.get('set')}, not from "
                              f"{spec['config']} {spec['set']}; remove the folder or give the model another name")
        return run / "checkpoints" / "best.ckpt"
    partial = run / "train_time.partial.json"
    before = json.loads(partial.read_text())["seconds"] if partial.exists() else 0.0
    log(f"{name}: training from {spec['config']} {' '.join(spec['set'])} in {run}")
    t0 = time.time()
    try:
        train()
    finally:
        write_json(partial, {"seconds": before + time.time() - t0})
    write_json(done, {**normalize_spec(spec), "seconds": before + time.time() - t0, "threads": torch.get_num_threads(),
                      "device": device})
    partial.unlink()
    return run / "checkpoints" / "best.ckpt"
