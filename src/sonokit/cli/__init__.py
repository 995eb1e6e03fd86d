"""The `sonokit` command line: a thin shell over the library, one file per subcommand."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer
from rich.console import Console

from ..errors import SonokitError
from . import data, experiment, simulate, train
from .enhance import enhance_cmd
from .evaluate import evaluate_cmd
from .pretrain import pretrain_cmd
from .segment import segment_cmd
from .train_enhance import enhance_train_cmd

app = typer.Typer(
    name="sonokit",
    help="sonokit: ultrasound-native deep learning. Read datasets, make de-duplicated splits, train, "
    "evaluate, segment your own images and write HTML reports.\n\n"
    "Quick start: `sonokit simulate phantom --out ph --n 100`, `sonokit data split ph --out split.json`, "
    "`sonokit train segment --config configs/demo_phantom_cpu.yaml --set data.root=ph --set data.split=split.json`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.add_typer(train.app, name="train")
app.add_typer(simulate.app, name="simulate")
app.add_typer(experiment.app, name="experiment")
app.command("evaluate")(evaluate_cmd)
app.command("segment")(segment_cmd)
app.command("pretrain")(pretrain_cmd)
app.command("enhance")(enhance_cmd)
train.app.command("enhance")(enhance_train_cmd)


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A run folder (from `sonokit train --out`) or a folder of runs."),
    out: Path = typer.Option(None, "--out", "-o", help="HTML file to write (default: RUN_DIR/report.html)."),
) -> None:
    """Write one self-contained HTML report: metrics (mean ± std), training curves, best/median/worst overlays."""
    from ..reports import build_report

    path = build_report(run_dir, out)
    Console().print(f"report written to {path.resolve()}")


@app.command("export")
def export_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-k", help="Checkpoint (.ckpt) from `sonokit train`."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file: .safetensors or .onnx."),
) -> None:
    """Export a trained model to safetensors (weights + metadata) or ONNX (dynamic batch and image size)."""
    from ..errors import ConfigError
    from ..export import export_onnx, export_safetensors
    from ..inference import Segmenter

    seg = Segmenter.from_checkpoint(checkpoint)
    if out.suffix == ".safetensors":
        export_safetensors(seg, out)
    elif out.suffix == ".onnx":
        export_onnx(seg, out)
    else:
        raise ConfigError(f"--out '{out}' must end in .safetensors or .onnx")
    Console().print(f"exported {seg.hparams['model']} to {out}")


@app.command("models")
def models_cmd(
    pattern: str = typer.Argument("*", help="Glob pattern, e.g. 'resunet*'."),
    kind: str = typer.Option("model", "--kind", help="What to list: model, encoder or ssl (SSL methods)."),
) -> None:
    """List the registered models (or encoders, or SSL methods)."""
    from ..errors import ConfigError
    from ..models import list_models
    from ..models.encoders import list_encoders
    from ..ssl import list_ssl_methods

    listers = {"model": list_models, "encoder": list_encoders, "ssl": list_ssl_methods}
    if kind not in listers:
        raise ConfigError(f"--kind must be one of {', '.join(listers)}; found '{kind}'")
    for name in listers[kind](pattern):
        print(name)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logs and full tracebacks.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if verbose:
        _STATE["verbose"] = True


_STATE = {"verbose": False}


def main() -> None:
    """Console entry point: sonokit errors become one clear line and exit code 2."""
    try:
        app(standalone_mode=False)
    except SonokitError as e:
        if _STATE["verbose"]:
            raise
        Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted; checkpoints already written are kept")
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
