"""The options every config-driven command shares (``train segment|classify|enhance``, ``pretrain``,
``experiment ...``), defined once so that their flags and meaning cannot drift apart; each command passes its
own example into the help text. Also the console helpers every command prints with."""
from __future__ import annotations

from pathlib import Path

import typer

from ..errors import TRUST_HELP


def config_option(example: str, *, required: bool = False):
    """``--config/-c``: the YAML config; optional (defaults) unless ``required``."""
    return typer.Option(... if required else None, "--config", "-c",
                        help=f"YAML config, e.g. {example}." + ("" if required else " Without it, the defaults "
                                                                  "(with --resume: the run's config.yaml)."))


def out_option(what: str = "Run folder"):
    """``--out/-o``: overrides ``out_dir`` of the config."""
    return typer.Option(None, "--out", "-o", help=f"{what} (overrides out_dir in the config).")


def set_option(example: str):
    """``--set/-s KEY=VALUE`` (repeatable): dotted config overrides, parsed as YAML values."""
    return typer.Option([], "--set", "-s", help=f"Override a config value: --set {example} (repeatable).")


def seed_option():
    return typer.Option(None, "--seed", help="Random seed (overrides the config).")


def resume_option():
    return typer.Option(False, "--resume", help="Continue the run in --out from checkpoints/last.ckpt (a finished "
                        "run does nothing unless --epochs is raised).")


def epochs_option():
    return typer.Option(None, "--epochs", help="Training epochs (overrides optim.epochs; raise it to extend a "
                        "finished run with --resume).")


def trust_option():
    return typer.Option(False, "--trust-checkpoint", help=TRUST_HELP)


def overrides(set_: list[str], *, out: Path | None = None, seed: int | None = None,
              epochs: int | None = None) -> list[str]:
    """``--set`` plus ``--out``, ``--seed`` and ``--epochs`` as config overrides."""
    return [*set_, *([f"out_dir={out}"] if out is not None else []), *([f"seed={seed}"] if seed is not None else []),
            *([f"optim.epochs={epochs}"] if epochs is not None else [])]


def err(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(msg, highlight=False, markup=False, soft_wrap=True)


def say(msg: str) -> None:
    """A progress line on stderr (so stdout stays clean for results)."""
    err(msg)
