"""The enhancement benchmark's configuration: :class:`EnhanceBenchConfig` and its parts (YAML maps onto these)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...enhance.hybrid import GUIDE_WEIGHT


@dataclass
class BenchEnhancer:
    """A trained network: from ``checkpoint`` when given, else trained once from ``config`` (+ ``set``
    overrides, e.g. ``model.name=scunet_small``) into ``out_dir/models/<name>``."""
    name: str = "dncnn_small"
    config: str = "configs/enhance_busi_cpu.yaml"
    set: list[str] = field(default_factory=list)
    checkpoint: str | None = None


@dataclass
class BenchHybrid:
    """NLLR + collaborative Wiener guided by one of the bench's networks (:mod:`sonokit.enhance.hybrid`): the
    Wiener pilot is ``(1 - guide_weight) · NLLR + guide_weight · network``; runs at ``frames.max_side``."""
    name: str = "nllr_wiener_guided"
    guide: str = "drunet_small_gaussian"  # the name of an entry of ``enhancers``
    guide_weight: float = GUIDE_WEIGHT


@dataclass
class BenchFrames:
    root: str = "../shared/data/busi"
    format: str | None = None
    split: str | None = "splits/busi_v1.json"
    part: str = "test"
    classes: list[str] | None = None
    n: int = 16
    max_side: int = 256


@dataclass
class NoiseSetting:
    kind: str = "gaussian"  # gaussian: level = σ in 8-bit units (σ/255); speckle: level = Nakagami m
    level: float = 25.0


@dataclass
class PSFStudy:
    enabled: bool = True
    blur_sigmas: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0])  # extra blur, pixels
    noise_sigma: float = 2.0  # 8-bit units
    image_size: int = 256
    dynamic_range_db: float = 50.0
    seed: int = 7


@dataclass
class SegSet:
    """A dataset for plug-and-play: a segmentation ``checkpoint``, or a segmentation ``config`` trained once
    into ``out_dir/seg/<name>``; scored on the ``part`` of the config's split (at most ``max_images``)."""
    name: str = "busi"
    config: str = "configs/busi_resunet18_cpu.yaml"
    set: list[str] = field(default_factory=list)
    checkpoint: str | None = None
    part: str = "test"
    max_images: int | None = None


@dataclass
class EnhanceBenchConfig:
    name: str = "enhance_bench"
    out_dir: str = "runs/enhance_bench"
    seed: int = 0
    device: str = "cpu"
    frames: BenchFrames = field(default_factory=BenchFrames)
    enhancers: list[BenchEnhancer] = field(default_factory=lambda: [BenchEnhancer()])
    classical: list[str] = field(default_factory=lambda: ["median", "srad", "nllr", "bm3d"])
    hybrids: list[BenchHybrid] = field(default_factory=list)
    noise: list[NoiseSetting] = field(default_factory=lambda: [
        NoiseSetting("gaussian", 10), NoiseSetting("gaussian", 25), NoiseSetting("gaussian", 50),
        NoiseSetting("speckle", 4), NoiseSetting("speckle", 1)])
    speckle_dynamic_range_db: float = 50.0
    psf: PSFStudy = field(default_factory=PSFStudy)
    segmentation: list[SegSet] = field(default_factory=list)
    plug_methods: list[str] | None = None  # default: every network and nllr
    tile: int = 256
    overlap: int = 64
