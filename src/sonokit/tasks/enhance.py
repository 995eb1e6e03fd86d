"""Blind ultrasound enhancement as a Lightning task (Khan et al. 2026, arXiv 2601.21856).

Training pairs are made ON THE FLY from clean-like target crops (:class:`sonokit.data.pairs.TargetCropDataset`):
in :meth:`EnhanceTask.on_after_batch_transfer` each ``(B, 1, C, C)`` batch of target crops goes through a
:class:`sonokit.physics.PairSynthesizer` — a random quarter-turn rotation, an anisotropic Gaussian PSF blur
and ONE noise model per patch (additive Gaussian, complex Fourier perturbation and/or multiplicative
speckle), trimmed to ``patch_size`` — with parameters from a generator seeded by
``seed * 1_000_003 + global_step``, so a resumed run replays exactly the degradations an uninterrupted run
would have seen. Validation crops are degraded the same way, but with generators seeded once per batch index
(the same degraded inputs every epoch), and PSNR/SSIM of the output (and, for reference, of the degraded
input) against the target are logged as ``val_psnr``, ``val_ssim``, ``val_psnr_input``.

The checkpoint records ``model``/``model_kwargs`` and an ``image`` dict (value range, target kind, the
``max_side`` the frames were downscaled to), so inference (:func:`sonokit.enhance.inference.load_enhancer`)
needs only the checkpoint.
"""
from __future__ import annotations

import copy
import math

import lightning as L
import torch

from ..enhance.models import create_enhancer
from ..metrics.quality import psnr_batch
from ..physics.degrade import (
    AdditiveGaussianNoise,
    FourierPerturbation,
    GaussianPSFBlur,
    MultiplicativeSpeckle,
    PairSynthesizer,
)
from .schedule import adamw_cosine

LOSSES = ("l1", "mse", "charbonnier")
NOISE_MODELS = ("gaussian", "fourier", "speckle")
VAL_SEED_OFFSET = 2_147_483_629  # validation generators: seed * 1_000_003 + VAL_SEED_OFFSET + batch_idx

DEFAULT_DEGRADE: dict = {
    "blur": {"axial_sigma": [0.5, 2.0], "lateral_sigma": [0.5, 3.0], "depth_factor": [1.0, 1.0]},
    "noises": {"gaussian": {"sigma": [0.01, 0.1]}, "fourier": {"phase_std": [0.0, 0.3], "magnitude_std": [0.0, 0.3]}},
    "rotation": "quarter",
}


# ------------------------------------------------------------------------------------------------- losses
def charbonnier_loss(x: torch.Tensor, y: torch.Tensor, *, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier (smooth L1) loss ``mean(sqrt((x - y)² + ε²))``; any equal shapes -> scalar."""
    return torch.sqrt((x - y) ** 2 + eps**2).mean()


def enhancement_loss(x: torch.Tensor, y: torch.Tensor, *, kind: str = "l1", eps: float = 1e-3) -> torch.Tensor:
    """``l1`` (the paper's), ``mse`` or ``charbonnier`` loss between output ``x`` and target ``y``."""
    if kind == "l1":
        return torch.nn.functional.l1_loss(x, y)
    if kind == "mse":
        return torch.nn.functional.mse_loss(x, y)
    if kind == "charbonnier":
        return charbonnier_loss(x, y, eps=eps)
    raise ValueError(f"loss must be one of {list(LOSSES)}, found {kind!r}")


# ----------------------------------------------------------------------------------------- degradations
def _pair(v, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(t) for t in v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a [min, max] pair, found {v!r}") from None
    return lo, hi


def build_degradations(degrade: dict | None) -> tuple[GaussianPSFBlur | None, tuple, str]:
    """``(blur, noises, rotation)`` from a plain dict (the ``degrade`` hyper-parameter)::

        {"blur": {"axial_sigma": [min, max], "lateral_sigma": [..], "depth_factor": [..]} or None,
         "noises": {"gaussian": {"sigma": [..]}, "fourier": {"phase_std": [..], "magnitude_std": [..]},
                    "speckle": {"kinds": [...], "nakagami_m": [..], "dynamic_range_db": null}},
         "rotation": "quarter"}

    Sigmas are in pixels, noise levels in [0, 1] intensity units. Each patch gets exactly one of the listed
    noise models (uniformly). Raises ``ValueError`` for unknown keys or bad ranges.
    """
    d = dict(DEFAULT_DEGRADE if degrade is None else degrade)
    unknown = set(d) - {"blur", "noises", "rotation"}
    if unknown:
        raise ValueError(f"unknown degrade key(s) {sorted(unknown)}; expected blur, noises, rotation")
    blur = None
    if d.get("blur") is not None:
        b = dict(d["blur"])
        bad = set(b) - {"axial_sigma", "lateral_sigma", "depth_factor"}
        if bad:
            raise ValueError(f"unknown blur key(s) {sorted(bad)}; expected axial_sigma, lateral_sigma, depth_factor")
        blur = GaussianPSFBlur(**{k: _pair(v, f"blur.{k}") for k, v in b.items()})
    noises = []
    for name, kw in (d.get("noises") or {}).items():
        kw = dict(kw or {})
        if name == "gaussian":
            noises.append(AdditiveGaussianNoise(**{k: _pair(v, f"gaussian.{k}") for k, v in kw.items()}))
        elif name == "fourier":
            noises.append(FourierPerturbation(**{k: _pair(v, f"fourier.{k}") for k, v in kw.items()}))
        elif name == "speckle":
            if "nakagami_m" in kw:
                kw["nakagami_m"] = _pair(kw["nakagami_m"], "speckle.nakagami_m")
            if "kinds" in kw:
                kw["kinds"] = tuple(kw["kinds"])
            noises.append(MultiplicativeSpeckle(**kw))
        else:
            raise ValueError(f"unknown noise model {name!r}; expected some of {list(NOISE_MODELS)}")
    return blur, tuple(noises), str(d.get("rotation", "quarter"))


def degrade_margin(degrade: dict | None) -> int:
    """Pixels of context each side of a patch that the blur needs (the crop is ``patch + 2 * margin``)."""
    blur, _, _ = build_degradations(degrade)
    return blur.max_radius() if blur is not None else 0


def make_synthesizer(patch: int, degrade: dict | None, *, rotation: str | None = None) -> PairSynthesizer:
    blur, noises, rot = build_degradations(degrade)
    return PairSynthesizer(patch=patch, blur=blur, noises=noises, rotation=rotation or rot, clamp=True)


# ------------------------------------------------------------------------------------------------- task
class EnhanceTask(L.LightningModule):
    """Enhancement network trained on on-the-fly (degraded, target) pairs.

    Args:
        model: registered enhancer name (``sonokit.enhance.list_enhancers()``).
        model_kwargs: keyword arguments of the enhancer factory (e.g. ``weights`` for a warm start).
        loss: ``l1`` (default, as the paper), ``mse`` or ``charbonnier`` (``charbonnier_eps``).
        lr, weight_decay, warmup_epochs: AdamW with linear warm-up and cosine decay (per step).
        patch_size: side of the training patches (pixels); batches hold crops of
            ``patch_size + 2 * degrade_margin(degrade)`` pixels.
        val_patch_size: side of the validation patches (``None``: ``patch_size``).
        degrade: degradation settings, see :func:`build_degradations` (``None``: :data:`DEFAULT_DEGRADE`).
        seed: seeds the degradation generators (per global step; per batch index for validation).
        image, data: recorded in the checkpoint (value range, target kind, ``max_side``; data source).
    """

    def __init__(self, *, model: str = "scunet_small", model_kwargs: dict | None = None, loss: str = "l1",
                 charbonnier_eps: float = 1e-3, lr: float = 1e-3, weight_decay: float = 1e-4,
                 warmup_epochs: float = 0.0, patch_size: int = 64, val_patch_size: int | None = None,
                 degrade: dict | None = None, seed: int = 0, image: dict | None = None,
                 data: dict | None = None) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, found {loss!r}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, found {lr}")
        if patch_size < 8:
            raise ValueError(f"patch_size must be >= 8 pixels, found {patch_size}")
        if degrade is None:
            degrade = copy.deepcopy(DEFAULT_DEGRADE)
        self.save_hyperparameters()  # reads the arguments' current values, so degrade is recorded in full
        self.hparams["task"] = "enhance"
        self.train_synth = make_synthesizer(patch_size, degrade)
        self.val_synth = make_synthesizer(val_patch_size or patch_size, degrade)
        self.margin = degrade_margin(degrade)
        self.model = create_enhancer(model, **(model_kwargs or {}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def crop_size(self, *, val: bool = False) -> int:
        """Side of the target crops the dataloaders must deliver."""
        p = (self.hparams.val_patch_size or self.hparams.patch_size) if val else self.hparams.patch_size
        return int(p) + 2 * self.margin

    def on_train_epoch_start(self) -> None:
        dl = self.trainer.train_dataloader if self.trainer is not None else None
        ds = getattr(dl, "dataset", None)
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(self.current_epoch)

    def _degrade(self, synth: PairSynthesizer, target: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return synth(target, g)  # (B, 1, p, p) each

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if self.training and self.trainer is not None and self.trainer.training and "degraded" not in batch:
            seed = int(self.hparams.seed) * 1_000_003 + int(self.global_step)
            batch["degraded"], batch["target"] = self._degrade(self.train_synth, batch["target"], seed)
        return batch

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self(batch["degraded"])
        loss = enhancement_loss(out, batch["target"], kind=self.hparams.loss, eps=self.hparams.charbonnier_eps)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=out.shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        from ..metrics.quality import ssim

        seed = int(self.hparams.seed) * 1_000_003 + VAL_SEED_OFFSET + batch_idx
        degraded, target = self._degrade(self.val_synth, batch["target"], seed)
        out = self(degraded)
        loss = enhancement_loss(out, target, kind=self.hparams.loss, eps=self.hparams.charbonnier_eps)
        out = out.clamp(0, 1)
        b = out.shape[0]
        psnr = psnr_batch(out, target, mse_floor=1e-12).mean()
        psnr_in = psnr_batch(degraded, target, mse_floor=1e-12).mean()
        o, t = out.detach().float().cpu().numpy(), target.float().cpu().numpy()
        ss = sum(ssim(o[i, 0], t[i, 0], win_size=7) for i in range(b)) / b  # patches are >= 8 px
        self.log("val_loss", loss, on_epoch=True, batch_size=b, sync_dist=True)
        self.log("val_psnr", psnr, on_epoch=True, prog_bar=True, batch_size=b, sync_dist=True)
        self.log("val_psnr_input", psnr_in, on_epoch=True, batch_size=b, sync_dist=True)
        self.log("val_ssim", torch.tensor(float(ss) if math.isfinite(ss) else 0.0), on_epoch=True, batch_size=b,
                 sync_dist=True)

    def configure_optimizers(self):
        return adamw_cosine(self, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                            warmup_epochs=self.hparams.warmup_epochs)
