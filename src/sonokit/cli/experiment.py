"""`sonokit experiment ...`: multi-run protocols that end in one results table and one HTML report."""
from __future__ import annotations

from pathlib import Path

import typer

from .options import config_option, out_option, say, set_option

app = typer.Typer(help="Run a paper's experiment protocol (many runs, one table, one report).", no_args_is_help=True, rich_markup_mode=None)


@app.command("ssl-grid")
def ssl_grid_cmd(
    config: Path = config_option("configs/ssl_grid_busi_cpu.yaml", required=True),
    out: Path = out_option("Output folder"),
    set_: list[str] = set_option("seeds=[0]"),
) -> None:
    """Ellis et al. 2025: pretrain each SSL variant once (PIRL + jigsaw / cross-patch jigsaw / frequency
    band-stop, RCL + perceptual with the best view), fine-tune a Res-UNet at each label fraction and seed on
    the fixed split, score in-domain and out-of-distribution, and write results.md/json and report.html.
    Finished runs are kept, so rerunning the command resumes the grid."""
    from ..config import load_config
    from ..experiments import SSLGrid, SSLGridConfig

    overrides = list(set_) + ([f"out_dir={out}"] if out is not None else [])
    grid = SSLGrid(load_config(config, overrides, cls=SSLGridConfig), log=say)
    grid.run()
    say(f"results in {grid.out / 'results.md'}; report {grid.out / 'report.html'}")


@app.command("ablation")
def ablation_cmd(
    config: Path = config_option("configs/sfrecsam_ablation_busi_cpu.yaml", required=True),
    out: Path = out_option("Output folder"),
    set_: list[str] = set_option("seeds=[0]"),
    ood: list[str] = typer.Option([], "--ood", help="Also score every run on this out-of-distribution folder: "
                                  "NAME=FOLDER or FOLDER (every image with a mask; repeatable)."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:1: where runs train and are scored "
                               "(overrides device in the config)."),
) -> None:
    """A generic ablation: each row of the config is the base segmentation config with its own --set style
    overrides (and optionally a subset of its stages); every row is trained for each label fraction and seed,
    scored on the held-out test split (and each --ood set), and results.md/json (Dice, IoU, precision, recall,
    HD95 as mean ± std over seeds; paired per-image Dice comparisons with a bootstrap CI) and report.html are
    written. Finished runs are kept, so rerunning the command resumes."""
    from ..config import load_config
    from ..experiments import Ablation, AblationConfig, parse_ood

    overrides = list(set_) + ([f"out_dir={out}"] if out is not None else []) + (
        [f"device={device}"] if device is not None else [])
    cfg = load_config(config, overrides, cls=AblationConfig)
    cfg.ood = [*cfg.ood, *(parse_ood(o) for o in ood)]
    abl = Ablation(cfg, log=say)
    abl.run()
    say(f"results in {abl.out / 'results.md'}; report {abl.out / 'report.html'}")


@app.command("avit-ablation")
def avit_ablation_cmd(
    config: Path = config_option("configs/avit_ablation_cpu.yaml", required=True),
    out: Path = out_option("Output folder"),
    set_: list[str] = set_option("seeds=[0]"),
    row: list[str] = typer.Option(None, "--row", help="Run only this row (its name; repeatable): two processes can "
                                  "share an ablation by rows. results.md/json always hold every finished score."),
    task: list[str] = typer.Option(None, "--task", help="Run only this downstream task (its name; repeatable)."),
) -> None:
    """A pretraining ablation (A-ViT, ICLR 2026: ViT from scratch -> MIM -> + ACDT -> + adversarial -> + self-
    distillation, λ fixed vs adaptive): each row pretrains once, each downstream task (linear probe, fine-tune,
    segmentation) trains per seed and is scored on the test split, with the dataset's organ and optionally the
    predicted or a wrong one. Writes results.md/json; finished runs are kept, so rerunning resumes."""
    from ..config import load_config
    from ..experiments import PretrainAblation, PretrainAblationConfig

    overrides = list(set_) + ([f"out_dir={out}"] if out is not None else [])
    abl = PretrainAblation(load_config(config, overrides, cls=PretrainAblationConfig), log=say)
    abl.run(rows=row or None, tasks=task or None)
    say(f"results in {abl.out / 'results.md'}")


@app.command("enhance-bench")
def enhance_bench_cmd(
    config: Path = config_option("configs/enhance_bench_busi_cpu.yaml", required=True),
    out: Path = out_option("Output folder"),
    set_: list[str] = set_option("frames.n=8"),
) -> None:
    """Khan et al. 2026: train each enhancer once (or take its checkpoint), then (1) PSNR/SSIM of networks vs
    NLLR vs classical filters at several Gaussian σ and speckle levels on held-out frames, (2) a controlled
    PSF study (point-target FWHM and edge gradient on a simulated phantom), (3) plug-and-play: Dice of a fixed
    segmentation model on raw vs enhanced test images. Writes results.md/json and report.html; finished parts
    are kept, so rerunning resumes."""
    from ..config import load_config
    from ..experiments import EnhanceBench, EnhanceBenchConfig

    overrides = list(set_) + ([f"out_dir={out}"] if out is not None else [])
    bench = EnhanceBench(load_config(config, overrides, cls=EnhanceBenchConfig), log=say)
    bench.run()
    say(f"results in {bench.out / 'results.md'}; report {bench.out / 'report.html'}")
