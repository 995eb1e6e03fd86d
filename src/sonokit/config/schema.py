"""The config sections shared by every training command (data, optimiser, augmentation, trainer, stages).

Every field here is documented where it is declared; ``sonokit train segment --help`` and the YAML
presets in ``configs/`` show them in use. Task configs (:mod:`sonokit.config.tasks`) compose them.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DataConfig:
    root: str | None = None  # dataset folder
    format: str | None = None  # busi | udiat | breast | hc18 | ddti | folder | dicom (auto-detected when null)
    split: str | None = None  # split JSON file (sonokit data split); null: a random 70/10/20 split is saved
    fraction: float = 1.0  # label fraction of train: a nested subset stored in the split file
    classes: list[str] | None = None  # keep only these class labels (classification: their order is the index)
    label_key: str = "label"  # what gives a sample's class: 'label' or a reader meta key (e.g. 'tirads' for ddti)
    organs: list[str] | None = None  # organ vocabulary for the batch's organ index (null: sonokit's default)
    image_size: int = 128  # letterbox side
    batch_size: int = 16
    num_workers: int = 0
    cache: bool = True  # read and letterbox every sample once, up front
    fail_fast: bool = False  # raise on the first unreadable sample instead of logging and skipping it


@dataclass
class ParamGroup:
    """Parameters whose names match ``params`` (fnmatch patterns) get their own lr / weight decay."""
    params: list[str] = field(default_factory=list)
    lr: float | None = None  # null: optim.lr
    weight_decay: float | None = None  # null: optim.weight_decay


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 22
    max_steps: int | None = None  # when set, train for exactly this many steps (epochs is then ignored)
    warmup_epochs: float = 0.0
    freeze: list[str] = field(default_factory=list)  # parameter-name patterns to freeze, e.g. [encoder.*]
    unfreeze: list[str] = field(default_factory=list)  # exceptions to freeze, e.g. ['*adapter*']
    groups: list[ParamGroup] = field(default_factory=list)  # first matching group wins; the rest: lr above


@dataclass
class InitConfig:
    """Weights to start from: the model of another run's checkpoint (e.g. stage 1 of a two-stage method)."""
    checkpoint: str | None = None  # a sonokit .ckpt (or a model .safetensors from `sonokit export`)
    strict: bool = False  # false: tensors the model lacks / the file lacks are listed, not errors


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
    num_nodes: int = 1  # machines of a multi-node DDP / FSDP run (devices per machine)
    strategy: str = "auto"  # e.g. ddp, fsdp
    precision: str = "32-true"  # e.g. 16-mixed, bf16-mixed on GPU
    num_threads: int | None = None  # torch CPU threads (null: torch's default)
    check_val_every_n_epoch: int = 1
    log_every_n_steps: int = 10
    checkpoint_every_n_steps: int | None = None  # also write last.ckpt every N steps (long epochs)
    deterministic: bool = False
    progress: str = "auto"  # auto (rich on a terminal, a line per epoch otherwise) | rich | lines | none


@dataclass
class StageConfig:
    """One stage of a multi-stage run: overrides of the config (dotted keys, as ``--set``), trained in
    ``out_dir/<name>``; a stage after the first starts from the previous stage's best (else last) model."""
    name: str = "stage"
    set: dict = field(default_factory=dict)  # e.g. {optim.epochs: 10, optim.freeze: [encoder.*]}
    init_from_previous: bool = True


# Ranges of numeric keys, checked for every config that has them (``None``: unbounded; ``lo_open``: the
# minimum itself is not allowed). A value out of range is a ConfigError naming the key, never a traceback
# from deep inside torch or Lightning.
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "seed": (0, None, False),
    "data.batch_size": (1, None, False), "data.num_workers": (0, None, False), "data.image_size": (32, None, False),
    "data.fraction": (0, 1, True), "data.patch_size": (8, None, False), "data.patches_per_epoch": (1, None, False),
    "optim.lr": (0, None, True), "optim.weight_decay": (0, None, False), "optim.epochs": (1, None, False),
    "optim.max_steps": (1, None, False), "optim.warmup_epochs": (0, None, False),
    "trainer.num_threads": (1, None, False), "trainer.check_val_every_n_epoch": (1, None, False),
    "trainer.log_every_n_steps": (1, None, False), "trainer.checkpoint_every_n_steps": (1, None, False),
}
