"""Task configs: one dataclass per training command, composed of the shared sections.

``task`` names the command a config belongs to (``segment``, ``classify``, ``pretrain``, ``enhance``);
:func:`sonokit.config.load_config` picks the class from it, so one YAML file says what it trains.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .core import Spec, spec
from .enhance import DegradeConfig, EnhanceDataConfig, TargetConfig
from .schema import AugmentConfig, DataConfig, InitConfig, OptimConfig, StageConfig, TrainerConfig


@dataclass
class SegmentConfig:
    """``sonokit train segment``: binary segmentation (any registered model, e.g. Res-UNet, UPerNet/ViT)."""
    task: str = "segment"
    name: str = "segment"
    seed: int = 0
    out_dir: str = "runs/segment"
    checkpoint_monitor: str = "val_dice"  # best.ckpt is chosen on validation; reports use the test split
    data: DataConfig = field(default_factory=DataConfig)
    model: Spec = field(default_factory=lambda: spec("resunet_resnet18"))  # {name, **factory arguments}
    loss: list[Spec] = field(default_factory=lambda: [spec("dice_ce")])  # weighted terms {name, weight, ...}
    optim: OptimConfig = field(default_factory=OptimConfig)
    init: InitConfig = field(default_factory=InitConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    stages: list[StageConfig] = field(default_factory=list)


@dataclass
class ClassifyConfig:
    """``sonokit train classify``: image classification (``data.classes`` fixes the class order)."""
    task: str = "classify"
    name: str = "classify"
    seed: int = 0
    out_dir: str = "runs/classify"
    checkpoint_monitor: str = "val_balanced_accuracy"
    linear_probe: bool = False  # freeze the encoder (weights and BatchNorm statistics): a linear probe
    data: DataConfig = field(default_factory=DataConfig)
    model: Spec = field(default_factory=lambda: spec("classifier", encoder="resnet18"))
    loss: list[Spec] = field(default_factory=lambda: [spec("ce")])
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(epochs=20))
    init: InitConfig = field(default_factory=InitConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    stages: list[StageConfig] = field(default_factory=list)


@dataclass
class PretrainConfig:
    """``sonokit pretrain``: self-supervised encoder pretraining; the method owns its training step."""
    task: str = "pretrain"
    name: str = "pretrain"
    seed: int = 0
    out_dir: str = "runs/pretrain"
    data: DataConfig = field(default_factory=lambda: DataConfig(image_size=96, batch_size=32))
    encoder: Spec = field(default_factory=lambda: spec("resnet50"))  # a registered encoder and its arguments
    method: Spec = field(default_factory=lambda: spec("pirl"))  # a registered SSL method and its arguments
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(epochs=50))
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(rotate=10.0, scale=[1.0, 1.3], translate=0.1))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass
class EnhanceConfig:
    """``sonokit train enhance``: blind enhancement on physics-guided degradations of clean-like targets."""
    task: str = "enhance"
    name: str = "enhance"
    seed: int = 0
    out_dir: str = "runs/enhance"
    checkpoint_monitor: str = "val_psnr"  # best.ckpt maximises validation PSNR
    loss: str = "l1"  # l1 | mse | charbonnier
    data: EnhanceDataConfig = field(default_factory=EnhanceDataConfig)
    model: Spec = field(default_factory=lambda: spec("scunet_small"))  # a registered enhancer and its arguments
    target: TargetConfig = field(default_factory=TargetConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, epochs=10))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


CONFIGS: dict[str, type] = {"segment": SegmentConfig, "classify": ClassifyConfig, "pretrain": PretrainConfig,
                            "enhance": EnhanceConfig}
