"""The options every config-driven command shares (``train segment``, ``train enhance``, ``pretrain``,
``experiment ...``), defined once so that their flags and meaning cannot drift apart; each command passes
its own example into the help text."""
from __future__ import annotations

import typer


def config_option(example: str, *, required: bool = False):
    """``--config/-c``: the YAML config; optional (defaults) unless ``required``."""
    return typer.Option(... if required else None, "--config", "-c",
                        help=f"YAML config, e.g. {example}." + ("" if required else " Without it, the defaults."))


def out_option(what: str = "Run folder"):
    """``--out/-o``: overrides ``out_dir`` of the config."""
    return typer.Option(None, "--out", "-o", help=f"{what} (overrides out_dir in the config).")


def set_option(example: str):
    """``--set/-s KEY=VALUE`` (repeatable): dotted config overrides, parsed as YAML values."""
    return typer.Option([], "--set", "-s", help=f"Override a config value: --set {example} (repeatable).")


def seed_option():
    return typer.Option(None, "--seed", help="Random seed (overrides the config).")


def resume_option():
    return typer.Option(False, "--resume", help="Continue the run in --out from checkpoints/last.ckpt.")
