"""Training runs as a library: ``fit(config)`` trains any task with the one run skeleton.

>>> from sonokit.runs import fit                                                 # doctest: +SKIP
>>> run = fit("configs/busi_resunet18_cpu.yaml", overrides=["optim.epochs=2"])  # doctest: +SKIP

The command line (``sonokit train segment|classify|enhance``, ``sonokit pretrain``) is a thin shell over
:func:`fit`; experiments (``sonokit experiment ...``) and benchmarks call it too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable


def builder(task: str):
    """The builder of a task's runs (data, Lightning module, loaders)."""
    if task in ("segment", "classify"):
        from .supervised import build_supervised

        return build_supervised
    if task == "pretrain":
        from .pretrain import build_pretrain

        return build_pretrain
    if task == "enhance":
        from .enhance import build_enhance

        return build_enhance
    from ..errors import ConfigError

    raise ConfigError(f"unknown task '{task}'; expected segment, classify, pretrain or enhance")


def fit(config, *, overrides: list[str] | dict | None = None, task: str | None = None, resume: bool = False,
        log: Callable[[str], None] | None = print, prefix: str = "", trust: bool = False) -> Path:
    """Train a model as configured; returns the run folder.

    Args:
        config: a config object (:func:`sonokit.load_config`) or the path of a YAML config.
        overrides: dotted overrides (``["optim.lr=3e-4"]``) applied on top.
        task: the task when the YAML does not say (``segment``, ``classify``, ``pretrain``, ``enhance``).
        resume: continue the run in ``out_dir`` from its ``last.ckpt``.
        log: where progress lines go (``None``: silent); ``prefix`` starts each epoch line.
        trust: **dangerous.** Load the checkpoints the run reads (``last.ckpt`` on resume, ``init.checkpoint``)
            even if they hold objects that execute code when unpickled (``--trust-checkpoint``; see
            :func:`sonokit.serialization.load_checkpoint`). Weight files that model factories read
            (``model.encoder_checkpoint``, ``encoder_weights``) are never trusted.
    """
    from ..config import build, load_config, to_dict
    from .skeleton import fit_run

    if isinstance(config, (str, Path)):
        cfg = load_config(config, overrides, task=task)
    else:
        cfg = build(type(config), to_dict(config), overrides) if overrides else config
    return fit_run(cfg, builder(cfg.task), resume=resume, log=log, prefix=prefix, trust=trust)


__all__ = ["fit", "builder"]
