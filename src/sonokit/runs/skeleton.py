"""The one run skeleton every task uses: run folder, seed, data, config.yaml + data.json + run.json, loaders,
fit, checkpoints, resume, stages.

A run folder holds ``config.yaml`` (the resolved config), ``data.json`` (what was used and skipped),
``run.json`` (status, trainable parameters, seconds, commit, machine), ``metrics.csv`` (one row per epoch),
``checkpoints/last.ckpt`` (every epoch, every N steps when set, on SIGINT/SIGTERM) and, with a monitored
metric, ``checkpoints/best.ckpt``. A task contributes only a *builder*: ``build(cfg, out, log, *, trust) ->
Prepared`` (its data, Lightning module and loaders); everything else is here.

Resuming (``resume=True``) continues from ``last.ckpt``: a run that already finished says so and does
nothing unless the epochs were raised; a config that differs from the run's ``config.yaml`` in anything
but the training length, threads and progress display is refused, naming the keys.

Every checkpoint a run reads (``last.ckpt`` on resume, ``init.checkpoint``) goes through
:func:`sonokit.serialization.load_checkpoint` / ``load_weights`` with the run's ``trust`` (``--trust-checkpoint``;
default False: a file that would run code is refused); Lightning then re-reads ``last.ckpt`` with
``weights_only=not trust``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..config import config_from_dict, dump_yaml, read_yaml, to_dict
from ..data.io import atomic_write
from ..errors import ConfigError
from .callbacks import RunInterrupted, RunState
from .trainer import best_checkpoint, make_trainer

RESUMABLE_KEYS = ("optim.epochs", "optim.max_steps", "trainer.progress", "trainer.num_threads", "out_dir",
                  "trainer.checkpoint_every_n_steps")


@dataclass
class Prepared:
    """What a task's builder hands the skeleton."""
    task: object  # the LightningModule
    train_loader: object
    val_loader: object | None
    data: dict  # written to data.json
    summary: str  # one line for the console
    monitor: str | None = None  # metric that chooses best.ckpt (None: no best.ckpt)
    maximize: bool = True
    after_fit: Callable[[object], None] | None = None  # e.g. save the pretrained encoder
    skipped: list = field(default_factory=list)


def _write_json(path: Path, doc: dict) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=1, default=str) + "\n"))


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not ("name" in v and prefix == ""):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def clean_orphans(out: Path) -> list[Path]:
    """Remove temporary files a crash left behind (``.NAME.*.tmp`` from atomic writes)."""
    removed = []
    for folder in (out, out / "checkpoints", out / "eval"):
        if folder.is_dir():
            for p in folder.glob(".*.tmp"):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def last_state(last: Path, *, trust: bool = False) -> dict:
    """``{"epochs_done", "global_step"}`` of a checkpoint written by :class:`RunState` (read safely; ``trust``
    see :func:`sonokit.serialization.load_checkpoint`)."""
    from ..serialization import load_checkpoint

    ck = load_checkpoint(last, trust=trust)
    st = (ck.get("callbacks") or {}).get("sonokit_run_state") or {}
    return {"epochs_done": int(st.get("epochs_done", ck.get("epoch", 0))), "global_step": int(ck.get("global_step", 0))}


def check_resume(cfg, out: Path, log, *, trust: bool = False) -> bool:
    """For ``resume``: True when there is work left; False (with a message) for a finished run. Raises when
    the config changed in a key that a resume cannot change."""
    last = out / "checkpoints" / "last.ckpt"
    if not last.exists():
        raise ConfigError(f"--resume: no checkpoint to resume from at '{last}'")
    saved = out / "config.yaml"
    if saved.exists():
        old, new = _flat(to_dict(config_from_dict(read_yaml(saved)))), _flat(to_dict(cfg))
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in RESUMABLE_KEYS)
        if diff:
            raise ConfigError(f"--resume: the config differs from the run's {saved} in {', '.join(diff[:8])}; a "
                              "resumed run must keep its settings (only optim.epochs / optim.max_steps may grow). "
                              "Start a new run with another --out instead")
    st = last_state(last, trust=trust)
    o = cfg.optim
    if o.max_steps is not None:
        done = st["global_step"] >= o.max_steps
        what = f"{st['global_step']} of {o.max_steps} steps"
    else:
        done = st["epochs_done"] >= o.epochs
        what = f"{st['epochs_done']} of {o.epochs} epochs"
    if done:
        log(f"run '{out}' is finished ({what}); nothing to do. Raise --epochs (or optim.max_steps) to train longer")
        return False
    log(f"resuming '{out}' from {last} ({what})")
    return True


def fit_run(cfg, build: Callable[..., Prepared], *, resume: bool = False, log: Callable[[str], None] | None = print,
            prefix: str = "", trust: bool = False) -> Path:
    """Train ``cfg`` with the task builder ``build``; returns the run folder. ``log=None`` prints nothing.
    ``trust`` (dangerous) loads checkpoints that would run code (:func:`sonokit.serialization.load_checkpoint`)."""
    if getattr(cfg, "stages", None):
        return fit_stages(cfg, build, resume=resume, log=log, prefix=prefix, trust=trust)
    import lightning as L
    import torch

    say = log or (lambda s: None)
    out = Path(cfg.out_dir)
    last = out / "checkpoints" / "last.ckpt"
    check = getattr(build, "check", None)
    if check is not None:  # the task's checks that need no data: fail before any file is written
        check(cfg)
    if resume:
        if not check_resume(cfg, out, say, trust=trust):
            return out
    elif last.exists():
        raise ConfigError(f"run folder '{out}' already holds a checkpoint; pass --resume to continue it, "
                          "or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    for p in clean_orphans(out):
        say(f"removed {p}, a temporary file left by an interrupted write")
    if cfg.trainer.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={cfg.trainer.accelerator}: no CUDA device is available on this "
                          "machine; use trainer.accelerator=cpu (or auto)")
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    prep = build(cfg, out, say, trust=trust)
    atomic_write(out / "config.yaml", lambda tmp: Path(tmp).write_text(dump_yaml(cfg)))
    _write_json(out / "data.json", prep.data)
    counts = getattr(prep.task, "param_counts", None)
    info = {"status": "running", "task": cfg.task, "name": cfg.name, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "parameters": counts, "resumed": bool(resume)}
    _write_json(out / "run.json", info)
    say(prep.summary)
    for sid, err in prep.skipped[:10]:
        say(f"skipped {sid}: {err}")
    if counts:
        say(f"trainable parameters: {counts['trainable']:,} of {counts['total']:,}")
    state = RunState(last, out / "metrics.csv", every_n_steps=cfg.trainer.checkpoint_every_n_steps)
    callbacks = [state] + ([best_checkpoint(out, prep.monitor, maximize=prep.maximize)] if prep.monitor else [])
    try:
        trainer = make_trainer(cfg, out, callbacks, log=log, prefix=prefix)
    except Exception as e:  # Lightning's MisconfigurationException (devices, strategy, precision)
        if type(e).__name__ != "MisconfigurationException":
            raise
        raise ConfigError(f"trainer: {e}") from None
    if resume:
        from ..serialization import load_checkpoint

        load_checkpoint(last, trust=trust)  # refuses a file that would run code, before Lightning reads it
    t0 = time.time()
    state.install_signal_handlers()
    try:
        trainer.fit(prep.task, prep.train_loader, prep.val_loader, ckpt_path=str(last) if resume else None,
                    weights_only=not trust)
    except RunInterrupted:
        _write_json(out / "run.json", {**info, "status": "interrupted", "seconds": round(time.time() - t0, 1)})
        raise
    finally:
        state.restore_signal_handlers()
    seconds = time.time() - t0
    if trainer.global_rank == 0 and prep.after_fit is not None:
        prep.after_fit(trainer)
    from ..provenance import commit, machine

    _write_json(out / "run.json", {**info, "status": "finished", "seconds": round(seconds, 1),
                                   "epochs": state.epochs_done, "global_step": trainer.global_step,
                                   "commit": commit(), "machine": machine()})
    say(f"trained in {seconds:.0f}s; checkpoints in {out / 'checkpoints'}")
    return out


def fit_stages(cfg, build, *, resume: bool, log, prefix: str, trust: bool = False) -> Path:
    """Train the stages in order, each in ``out_dir/<stage name>``; a stage after the first starts from the
    previous stage's model (best.ckpt, else last.ckpt) unless it sets ``init.checkpoint`` itself. The whole
    config (with its stages) is written to ``out_dir/config.yaml``, so ``--resume --out out_dir`` finds it;
    finished stages are skipped and an interrupted one resumes."""
    from ..config import build as build_config

    out = Path(cfg.out_dir)
    base = to_dict(cfg)
    base["stages"] = []
    previous: Path | None = None
    names = [s.name for s in cfg.stages]
    if len(set(names)) != len(names):
        raise ConfigError(f"stage names must be unique; found {names}")
    check = getattr(build, "check", None)

    def stage_config(st, init: str | None = None):
        over = {**st.set, "out_dir": str(out / st.name), "name": f"{cfg.name}_{st.name}"}
        if init is not None:
            over["init.checkpoint"] = init
        return build_config(type(cfg), json.loads(json.dumps(base)), over, source=f"stage '{st.name}'")

    for st in cfg.stages:  # every stage's config and its data-free checks, before the first stage trains
        scfg = stage_config(st)
        if check is not None:
            try:
                check(scfg)
            except ConfigError as e:
                raise ConfigError(f"stage '{st.name}': {e}") from None
    if not resume:  # before anything is written: a stage that already trained here needs --resume
        for st in cfg.stages:
            if (out / st.name / "checkpoints" / "last.ckpt").exists():
                raise ConfigError(f"run folder '{out}' already holds stage '{st.name}' with a checkpoint; pass "
                                  "--resume to continue the run, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    # the whole staged config at the root: `--resume --out ROOT` (no --config) reads it
    atomic_write(out / "config.yaml", lambda tmp: Path(tmp).write_text(dump_yaml(cfg)))
    for i, st in enumerate(cfg.stages):
        init = None
        if previous is not None and st.init_from_previous and "init.checkpoint" not in st.set:
            best = previous / "checkpoints" / "best.ckpt"
            init = str(best if best.exists() else previous / "checkpoints" / "last.ckpt")
        scfg = stage_config(st, init)
        run = Path(scfg.out_dir)
        info = run / "run.json"
        finished = info.exists() and json.loads(info.read_text()).get("status") == "finished"
        if log:
            log(f"stage {i + 1}/{len(cfg.stages)}: {st.name} in {run}")
        if not finished:
            fit_run(scfg, build, resume=resume and (run / "checkpoints" / "last.ckpt").exists(), log=log,
                    prefix=prefix, trust=trust)
        previous = run
    return out
