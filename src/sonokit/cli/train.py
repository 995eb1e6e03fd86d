"""`sonokit train segment|classify|enhance` and `sonokit pretrain`: config -> `sonokit.runs.fit`."""
from __future__ import annotations

from pathlib import Path

import typer

from .options import config_option, epochs_option, out_option, overrides, resume_option, say, seed_option, set_option, trust_option

app = typer.Typer(help="Train models. One subcommand per task.", no_args_is_help=True, rich_markup_mode=None)


def train(task: str, config: Path | None, out: Path | None, set_: list[str], seed: int | None, resume: bool,
          epochs: int | None, extra: list[str] = (), *, trust: bool = False) -> Path:
    """Load the config (with --resume and no --config: the run folder's config.yaml) and fit it. ``trust``
    (--trust-checkpoint) applies to the checkpoints the run reads: --resume's last.ckpt and init.checkpoint."""
    from ..config import load_config
    from ..errors import ConfigError
    from ..runs import fit

    if resume and config is None:
        if out is None:
            raise ConfigError("--resume needs the run folder: pass --out RUN (or the --config it was trained with)")
        config = Path(out) / "config.yaml"
        if not config.is_file():
            raise ConfigError(f"--resume: '{out}' holds no config.yaml; is it a sonokit run folder?")
    cfg = load_config(config, [*overrides(set_, out=out, seed=seed, epochs=epochs), *extra], task=task)
    return fit(cfg, resume=resume, log=say, trust=trust)


@app.command("segment")
def segment_cmd(
    config: Path = config_option("configs/busi_resunet18_cpu.yaml"),
    out: Path = out_option(),
    set_: list[str] = set_option("optim.lr=3e-4"),
    seed: int = seed_option(),
    resume: bool = resume_option(),
    epochs: int = epochs_option(),
    encoder_checkpoint: Path = typer.Option(
        None, "--encoder-checkpoint", exists=True, dir_okay=False, resolve_path=True,
        help="Start the encoder from this file: the encoder.safetensors written by `sonokit pretrain` "
             "(same as --set model.encoder_checkpoint=PATH). Always read safely: --trust-checkpoint does not "
             "apply to it (nor to model.encoder_weights), so a file that would run code is refused."),
    trust: bool = trust_option(),
) -> None:
    """Train a segmentation model (Res-UNet by default; any registered model: `sonokit models`).

    Example: sonokit train segment --config configs/busi_resunet18_cpu.yaml --seed 1 --out runs/busi_s1
    With an SSL-pretrained encoder: ... --encoder-checkpoint runs/ssl/encoder.safetensors
    """
    extra = [f"model.encoder_checkpoint={encoder_checkpoint}"] if encoder_checkpoint is not None else []
    train("segment", config, out, set_, seed, resume, epochs, extra, trust=trust)


@app.command("classify")
def classify_cmd(
    config: Path = config_option("configs/classify_busi_cpu.yaml"),
    out: Path = out_option(),
    set_: list[str] = set_option("linear_probe=true"),
    seed: int = seed_option(),
    resume: bool = resume_option(),
    epochs: int = epochs_option(),
    trust: bool = trust_option(),
) -> None:
    """Train an image classifier (any registered encoder + a linear head; linear_probe: true freezes the encoder).

    Example: sonokit train classify --config configs/classify_ddti_cpu.yaml --out runs/ddti_cls
    """
    train("classify", config, out, set_, seed, resume, epochs, trust=trust)


@app.command("enhance")
def enhance_cmd(
    config: Path = config_option("configs/enhance_busi_cpu.yaml"),
    out: Path = out_option(),
    set_: list[str] = set_option("data.patch_size=128"),
    seed: int = seed_option(),
    resume: bool = resume_option(),
    epochs: int = epochs_option(),
    trust: bool = trust_option(),
) -> None:
    """Train a blind enhancement model (SCUNet, DnCNN, Restormer, DRUNet) on physics-guided degradations
    (PSF blur + Gaussian / Fourier / speckle noise) of NLLR-denoised (or original) frames.

    Example: sonokit train enhance --config configs/enhance_busi_cpu.yaml --out runs/enh_busi
    """
    train("enhance", config, out, set_, seed, resume, epochs, trust=trust)


def pretrain_cmd(
    config: Path = config_option("configs/ssl_busi_cpu.yaml"),
    out: Path = out_option(),
    set_: list[str] = set_option("method.name=rcl"),
    seed: int = seed_option(),
    resume: bool = resume_option(),
    epochs: int = epochs_option(),
    trust: bool = trust_option(),
) -> None:
    """Pretrain an encoder without labels (PIRL, Relation Contrastive Loss, perceptual loss; jigsaw,
    cross-patch jigsaw and frequency band-stop views) and save it as RUN/encoder.safetensors.

    Example: sonokit pretrain --config configs/ssl_busi_cpu.yaml --set method.name=rcl+perceptual
    --set method.pretext=freq+cross_jigsaw --out runs/rcl ; then sonokit train segment ...
    --encoder-checkpoint runs/rcl/encoder.safetensors
    """
    train("pretrain", config, out, set_, seed, resume, epochs, trust=trust)
