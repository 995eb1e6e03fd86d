"""YAML configs mapped onto typed dataclasses; unknown keys are errors with a "did you mean" hint.

Overrides from the command line use dotted keys: ``--set optim.lr=3e-4 --set data.root=/data/busi``
(values are parsed as YAML, so ``[1, 2]``, ``null`` and ``true`` work).
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import ConfigError


@dataclass
class DataConfig:
    root: str | None = None  # dataset folder
    format: str | None = None  # busi | udiat | breast | hc18 | folder | dicom (auto-detected when null)
    split: str | None = None  # split JSON file (sonokit data split)
    fraction: float = 1.0  # label fraction of train: a nested subset stored in the split file
    classes: list[str] | None = None  # keep only these class labels (e.g. [benign, malignant])
    image_size: int = 128  # letterbox side
    batch_size: int = 16
    num_workers: int = 0
    cache: bool = True  # read and letterbox every sample once, up front
    fail_fast: bool = False  # raise on the first unreadable sample instead of logging and skipping it


@dataclass
class ModelConfig:
    name: str = "resunet_resnet18"
    encoder_weights: str | None = None  # local ImageNet weights file for the timm encoder
    encoder_checkpoint: str | None = None  # sonokit-pretrained encoder (SSL)
    decoder_channels: list[int] = field(default_factory=lambda: [256, 128, 64, 32, 16])
    in_chans: int = 1


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 22
    max_steps: int | None = None  # when set, train for exactly this many steps (epochs is then ignored)
    warmup_epochs: float = 0.0


@dataclass
class LossConfig:
    dice_weight: float = 1.0
    bce_weight: float = 1.0


@dataclass
class AugmentConfig:
    enabled: bool = True
    hflip: float = 0.5
    vflip: float = 0.0
    rotate: float = 10.0
    scale: list[float] = field(default_factory=lambda: [0.9, 1.1])
    translate: float = 0.05
    brightness: float = 0.1
    contrast: float = 0.1
    gamma: list[float] = field(default_factory=lambda: [0.8, 1.2])
    noise: float = 0.0


@dataclass
class TrainerConfig:
    accelerator: str = "cpu"  # cpu | gpu | auto
    devices: int | str = 1
    strategy: str = "auto"  # e.g. ddp
    precision: str = "32-true"  # e.g. 16-mixed, bf16-mixed on GPU
    num_threads: int | None = None  # torch CPU threads (null: torch's default)
    check_val_every_n_epoch: int = 1
    log_every_n_steps: int = 10
    deterministic: bool = False
    progress: str = "auto"  # auto (rich on a terminal, a line per epoch otherwise) | rich | none


@dataclass
class SegmentConfig:
    name: str = "segment"
    seed: int = 0
    out_dir: str = "runs/segment"
    checkpoint_monitor: str = "val_dice"  # best.ckpt is chosen on validation; reports use the test split
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass
class FreqConfig:
    """Frequency band-stop view (sonokit.transforms.frequency.FrequencyBandStop)."""
    p: float = 1.0
    kinds: list[str] = field(default_factory=lambda: ["circle", "x"])
    radius: list[float] = field(default_factory=lambda: [10.0, 100.0])
    width: list[float] = field(default_factory=lambda: [5.0, 30.0])
    thickness: list[float] = field(default_factory=lambda: [2.0, 10.0])
    angle: list[float] = field(default_factory=lambda: [10.0, 80.0])
    keep_radius: float = 10.0


@dataclass
class SSLConfig:
    """SSL method (sonokit.ssl.methods); null weights keep the method's own defaults."""
    name: str = "pirl"  # pirl | rcl | rcl+perceptual
    pretext: str = "jigsaw"  # jigsaw | cross_jigsaw | freq, combined with '+', e.g. freq+cross_jigsaw
    grid: int = 6
    embed_dim: int = 128
    temperature: float = 0.07
    momentum: float = 0.5
    num_negatives: int = 4096
    lam: float = 0.5
    rcl_weight: float | None = None
    relation_hidden: int = 64
    perceptual_weight: float | None = None
    perceptual_level: int = 3
    freq: FreqConfig = field(default_factory=FreqConfig)


@dataclass
class EncoderConfig:
    name: str = "resnet50"  # a registered encoder (sonokit models --encoders)
    weights: str | None = None  # local ImageNet weights (the paper starts from ImageNet)
    in_chans: int = 1


@dataclass
class PretrainConfig:
    name: str = "pretrain"
    seed: int = 0
    out_dir: str = "runs/pretrain"
    data: DataConfig = field(default_factory=lambda: DataConfig(image_size=96, batch_size=32))
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    method: SSLConfig = field(default_factory=SSLConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(epochs=50))
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(rotate=10.0, scale=[1.0, 1.3], translate=0.1))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass
class EnhanceDataConfig:
    """Frames for enhancement training: the TRAIN part of the split gives the targets, VAL the validation crops."""
    root: str | None = None  # dataset folder (any reader)
    format: str | None = None  # busi | udiat | breast | hc18 | folder | dicom (auto-detected when null)
    split: str | None = None  # split JSON file (sonokit data split); null: a random 70/10/20 split is saved
    classes: list[str] | None = None  # keep only these class labels
    max_frames: int | None = None  # use at most this many train frames (a seeded random subset; CPU presets)
    max_val_frames: int | None = None  # likewise for the validation frames
    max_side: int | None = None  # downscale frames (area) so the longer side is at most this; null: full size
    patch_size: int = 64  # training patch side (pixels); the paper uses 128/256
    val_patch_size: int | None = None  # validation patch side (null: patch_size), one centre crop per val frame
    batch_size: int = 16
    patches_per_epoch: int = 1024  # random crops per epoch (an epoch is patches_per_epoch / batch_size steps)
    num_workers: int = 0
    fail_fast: bool = False  # raise on the first unreadable frame instead of logging and skipping it


@dataclass
class EnhanceModelConfig:
    name: str = "scunet_small"  # a registered enhancer (scunet, scunet_small, dncnn, dncnn_small, restormer, drunet, ...)
    weights: str | None = None  # local weights file to start from (e.g. deepinv's published SCUNet weights)


@dataclass
class TargetConfig:
    """Clean-like targets: NLLR-denoised frames (ultrasound) or the original frames (phantom, natural images)."""
    kind: str = "nllr"  # nllr | original
    sigma: float | None = None  # NLLR noise std in [0, 1] units; null: estimated per frame
    patch: int = 8  # NLLR patch side
    stride: int = 4
    search: int = 10
    k: int = 16
    iterations: int = 2
    wiener: int = 0  # collaborative Wiener passes after NLLR (1: BM3D's second step guided by the NLLR estimate)
    cache_dir: str | None = None  # where NLLR targets are cached as .npy (null: RUN/targets); share it across runs
    device: str = "cpu"  # where NLLR runs (cuda: much faster for full-size frames)


@dataclass
class BlurConfig:
    enabled: bool = True
    axial_sigma: list[float] = field(default_factory=lambda: [0.5, 2.0])  # PSF sigma along depth, pixels
    lateral_sigma: list[float] = field(default_factory=lambda: [0.5, 3.0])  # PSF sigma laterally, pixels
    depth_factor: list[float] = field(default_factory=lambda: [1.0, 1.0])  # far-field growth of lateral sigma


@dataclass
class NoiseConfig:
    models: list[str] = field(default_factory=lambda: ["gaussian", "fourier"])  # one per patch: gaussian | fourier | speckle
    gaussian_sigma: list[float] = field(default_factory=lambda: [0.01, 0.1])  # std, [0, 1] intensity units
    fourier_phase_std: list[float] = field(default_factory=lambda: [0.0, 0.3])  # radians
    fourier_magnitude_std: list[float] = field(default_factory=lambda: [0.0, 0.3])  # log-std of the magnitude
    speckle_kinds: list[str] = field(default_factory=lambda: ["rayleigh", "nakagami"])
    speckle_m: list[float] = field(default_factory=lambda: [0.5, 3.0])  # Nakagami m range
    speckle_dynamic_range_db: float | None = None  # null: images are linear envelopes


@dataclass
class DegradeConfig:
    blur: BlurConfig = field(default_factory=BlurConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    rotation: str = "quarter"  # none | quarter | small | both


@dataclass
class EnhanceConfig:
    name: str = "enhance"
    seed: int = 0
    out_dir: str = "runs/enhance"
    checkpoint_monitor: str = "val_psnr"  # best.ckpt maximises validation PSNR
    loss: str = "l1"  # l1 | mse | charbonnier
    data: EnhanceDataConfig = field(default_factory=EnhanceDataConfig)
    model: EnhanceModelConfig = field(default_factory=EnhanceModelConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, epochs=10))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def _check_type(value, tp, where: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if value is None:
        if type(None) in args or tp is type(None):
            return None
        raise ConfigError(f"{where} may not be null")
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, found {value!r}")
        return [_check_type(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, found {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, found {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, found {value!r}")
        return value
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a string, found {value!r}")
        return str(value)
    return value


def from_dict(cls, data: dict, where: str = "", base=None):
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys and wrong types.

    Keys not given keep the defaults of ``base`` (the enclosing field's default, so a section's preset
    defaults, e.g. ``PretrainConfig.data.image_size = 96``, survive a partial section in the YAML).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown config key '{path}'{hint} allowed here: {', '.join(fields)}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            f = fields[key]
            sub_base = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
            kwargs[key] = from_dict(tp, value or {}, path, sub_base)
        else:
            kwargs[key] = _check_type(value, tp, path)
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for ov in overrides or []:
        if "=" not in ov:
            raise ConfigError(f"override '{ov}' must look like key.subkey=value")
        key, raw = ov.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{ov}': '{p}' is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else None
    return data


def load_config(path: str | Path | None, overrides: list[str] | None = None, cls=SegmentConfig):
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file '{p}' does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file '{p}' is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file '{p}' must hold a mapping at the top level")
    data = apply_overrides(data, overrides or [])
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path or 'config'}: {e}") from None


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
