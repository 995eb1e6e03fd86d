"""Config sections of blind enhancement training (``sonokit train enhance``, Khan et al. 2026)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EnhanceDataConfig:
    """Frames for enhancement training: the TRAIN part of the split gives the targets, VAL the validation crops."""
    root: str | None = None  # dataset folder (any reader)
    format: str | None = None  # busi | udiat | breast | hc18 | ddti | folder | dicom (auto-detected when null)
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
