"""The `sonokit` command line: a thin shell over the library, one file per subcommand.

Nothing heavy is imported here or at the top of the subcommand modules: `sonokit --help` and
`sonokit CMD --help` load typer and rich only (torch, Lightning, MONAI, timm are imported by the command
that needs them, when it runs).
"""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from . import data, experiment, simulate, train
from .enhance import enhance_cmd
from .evaluate import evaluate_cmd
from .options import err, trust_option
from .segment import segment_cmd

app = typer.Typer(
    name="sonokit",
    help="sonokit: ultrasound-native deep learning. Read datasets, make de-duplicated splits, train "
    "(segmentation, classification, self-supervised pretraining, enhancement), evaluate, segment or enhance "
    "your own images, and write HTML reports.\n\n"
    "Quick start: `sonokit simulate phantom --out ph --n 100`, `sonokit data split ph --out split.json`, "
    "`sonokit train segment --config configs/demo_phantom_cpu.yaml --set data.root=ph --set data.split=split.json`.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain click help: rich's help rendering costs ~0.3 s CPU per `--help`
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.add_typer(train.app, name="train")
app.add_typer(simulate.app, name="simulate")
app.add_typer(experiment.app, name="experiment")
app.command("evaluate")(evaluate_cmd)
app.command("segment")(segment_cmd)
app.command("pretrain")(train.pretrain_cmd)
app.command("enhance")(enhance_cmd)


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A run folder (from `sonokit train --out`) or a folder of runs."),
    out: Path = typer.Option(None, "--out", "-o", help="HTML file to write (default: RUN_DIR/report.html)."),
) -> None:
    """Write one self-contained HTML report of a run (or a folder of runs): each run's config, checkpoint, split
    and data warnings; metrics by task (segmentation: Dice, IoU, HD95, ...; classification: accuracy, balanced
    accuracy, AUROC, recall per class, confusion matrix), mean ± std over runs of one config; training curves
    (pretraining apart); best / median / worst cases as image | ground truth | prediction, and with
    `sonokit evaluate --save-uncertainty` as image | uncertainty heat-map | FP / FN maps."""
    from ..reports import build_report

    path = build_report(run_dir, out)
    err(f"report written to {path.resolve()}")


@app.command("export")
def export_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-k", help="Checkpoint (.ckpt) from `sonokit train`."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file: .safetensors or .onnx."),
    trust: bool = trust_option(),
) -> None:
    """Export a trained model to safetensors (weights + metadata) or ONNX (dynamic batch and image size).
    Models that export only part of themselves to ONNX say what (SF-RecSAM: the base network, no corrector)."""
    from ..export import export_model

    what = export_model(checkpoint, out, trust=trust, log=err)
    err(f"exported {what} to {out}")


KINDS = {
    "model": ("sonokit.models", "MODELS"), "encoder": ("sonokit.models.encoders", "ENCODERS"),
    "decoder": ("sonokit.models.decoders", "DECODERS"), "loss": ("sonokit.tasks.losses", "LOSSES"),
    "enhancer": ("sonokit.enhance.models", "ENHANCERS"), "classical": ("sonokit.enhance.classical", "CLASSICAL"),
    "format": ("sonokit.data.datasets", "FORMATS"), "ssl": ("sonokit.ssl", "SSL_METHODS"),
}


@app.command("models")
def models_cmd(
    pattern: str = typer.Argument("*", help="Glob pattern, e.g. 'resunet*'."),
    kind: str = typer.Option("model", "--kind", help="Registry to list: " + ", ".join(KINDS) + ", or all."),
    params: bool = typer.Option(False, "--params", help="Also list each entry's config keys (factory parameters)."),
    pretrained: bool = typer.Option(False, "--pretrained", help="List the trained models shipped with sonokit "
                                    "(name, --task, file, card) instead."),
) -> None:
    """List what is registered: models, encoders, decoders, losses, enhancers, classical filters, dataset
    formats, SSL methods. Each entry's parameters are the keys its config section takes."""
    import importlib

    from ..errors import ConfigError

    if pretrained:
        from ..zoo import entries

        for e in entries():
            how = f"sonokit {e.task} IMAGES {'--task' if e.task == 'segment' else '--model'} {e.alias or e.name}"
            print(f"{e.name}  ({how}; {e.dtype}, {e.path.stat().st_size / 2**20:.1f} MiB)  —  "
                  f"{e.summary}  Card: {e.card_path}")
        return
    kinds = list(KINDS) if kind == "all" else [kind]
    if kind != "all" and kind not in KINDS:
        from ..registry import did_you_mean

        raise ConfigError(f"--kind must be one of {', '.join(KINDS)} or all; found '{kind}'{did_you_mean(kind, KINDS)}")
    for k in kinds:
        mod, attr = KINDS[k]
        reg = getattr(importlib.import_module(mod), attr)
        if kind == "all":
            print(f"# {k}")
        for name in reg.list(pattern):
            line = name
            if params:
                ps, var = reg.parameters(name)
                line += "  (" + ", ".join(ps) + (", ..." if var else "") + ")"
            summary = reg.summary(name)
            print(f"{line}  —  {summary}" if summary else line)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logs and full tracebacks.")) -> None:
    import logging

    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if verbose:
        _STATE["verbose"] = True


_STATE = {"verbose": False}


def main() -> None:
    """Console entry point: sonokit errors become one clear line and exit code 2 (1 for a command that
    finished with skipped inputs, 130 for an interrupted run)."""
    from ..errors import SonokitError

    try:
        rc = app(standalone_mode=False)  # typer.Exit(n) inside a command comes back as the return value here
        if isinstance(rc, int) and rc != 0:
            sys.exit(rc)
    except SonokitError as e:
        if _STATE["verbose"]:
            raise
        interrupted = type(e).__name__ == "RunInterrupted"
        err(("interrupted: " if interrupted else "error: ") + str(e))
        sys.exit(130 if interrupted else getattr(e, "exit_code", 2))
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err("interrupted; checkpoints already written are kept")
        sys.exit(130)
    except Exception as e:  # click usage errors come through here in standalone_mode=False
        usage, abort = _click_exceptions()
        if isinstance(e, usage):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, abort):
            sys.exit(1)
        raise


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """The ClickException and Abort classes typer may raise: click's, and (typer >= 0.2x, which vendors click
    as ``typer._click``) typer's own copies, which are not subclasses of click's."""
    usage, abort = [], [typer.Abort]
    try:
        import click

        usage.append(click.exceptions.ClickException)
        abort.append(click.exceptions.Abort)
    except ImportError:
        pass
    try:
        from typer._click import exceptions as vendored

        usage.append(vendored.ClickException)
    except ImportError:
        pass
    return tuple(usage), tuple(abort)


__all__ = ["app", "main"]
