"""PIRL-style contrastive pretraining as a pretraining method (Ellis et al. 2025), registered by name.

``pirl``, ``rcl`` and ``rcl+perceptual`` (see :mod:`sonokit.ssl.methods` for the losses) are one
LightningModule, :class:`ContrastivePretraining`, with different defaults. Each step draws, from one
generator seeded by ``(seed, global_step)`` (so a resumed run replays the same views): two independent base
augmentations of every image (flip, affine, intensity), and the pretext transformation ``t`` (jigsaw /
cross-patch jigsaw / frequency band-stop) of the second. The method's loss is minimised and the image-view
embeddings are written into the memory bank (gathered over all processes under DDP, so every rank keeps
the same bank).
"""
from __future__ import annotations

import functools

import torch

from ..registry import Registry
from ..tasks.pretrain import PretrainMethod
from ..transforms import SegAugment
from .arl import ARLPretraining
from .methods import VARIANTS, contrastive_model
from .views import PretextTransform

SSL_METHODS: Registry = Registry("SSL method")


class ContrastivePretraining(PretrainMethod):
    """Args (the ``method`` section of a pretraining config; the run provides the rest):
        pretext: pretext transformation spec, e.g. ``"cross_jigsaw"`` or ``"freq+jigsaw"``.
        grid: jigsaw grid side (6 in the paper).
        freq: keyword arguments of :class:`sonokit.transforms.frequency.FrequencyBandStop`.
        embed_dim, temperature, momentum, num_negatives, lam, rcl_weight, relation_hidden, perceptual_weight,
        perceptual_level: see :class:`sonokit.ssl.methods.ContrastivePretrainer`.
    Run-provided: ``encoder`` (encoder spec), ``n_data``, ``seed``, ``image_size``, ``augment``, ``lr``,
    ``weight_decay``, ``warmup_epochs``, ``freeze``/``unfreeze``/``groups``, ``data`` (recorded).
    """

    def __init__(self, *, encoder: dict | str = "resnet50", n_data: int, pretext: str = "jigsaw", grid: int = 6,
                 freq: dict | None = None, embed_dim: int = 128, temperature: float = 0.07, momentum: float = 0.5,
                 num_negatives: int = 4096, lam: float = 0.5, rcl_weight: float = 0.0, relation_hidden: int = 64,
                 perceptual_weight: float = 0.0, perceptual_level: int = 3, augment: dict | None = None,
                 lr: float = 1e-3, weight_decay: float = 1e-4, warmup_epochs: float = 0.0, seed: int = 0,
                 image_size: int = 96, freeze: list | None = None, unfreeze: list | None = None,
                 groups: list | None = None, data: dict | None = None, method: str = "pirl") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.hparams["task"] = "pretrain"
        self.model = contrastive_model(
            method, encoder=encoder, n_data=n_data, embed_dim=embed_dim, temperature=temperature, momentum=momentum,
            num_negatives=num_negatives, lam=lam, rcl_weight=rcl_weight, relation_hidden=relation_hidden,
            perceptual_weight=perceptual_weight, perceptual_level=perceptual_level, seed=seed)
        self.pretext = PretextTransform(pretext, grid=grid, freq=freq)
        self.pretext.check_size(image_size)
        self.augment = SegAugment(**augment) if augment is not None else None
        self.setup_params()

    def encoder_module(self) -> torch.nn.Module:
        return self.model.encoder

    @staticmethod
    def check_options(*, image_size: int, pretext: str = "jigsaw", grid: int = 6, freq: dict | None = None,
                      **_) -> None:
        """Checks that need no data (run before any image is read): the views and the band-stop ranges."""
        from ..errors import ConfigError
        from ..transforms.frequency import FrequencyBandStop

        if freq is not None:
            if not isinstance(freq, dict):
                raise ConfigError(f"method.freq must be a mapping of band-stop settings, found {freq!r}")
            try:
                FrequencyBandStop(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in freq.items()})
            except (TypeError, ValueError) as e:
                raise ConfigError(f"method.freq: {e}") from None
        PretextTransform(pretext, grid=grid, freq=freq).check_size(image_size)

    @torch.no_grad()
    def on_train_start(self) -> None:
        """Warm-start the memory bank with the image-view embeddings of every training image (one pass, no
        augmentation, no gradient), so that the NCE normaliser Z, fixed on the first batch, is estimated from
        real embeddings rather than from the bank's random initial vectors (with a random bank Z comes out far
        too small and the NCE loss grows as the bank fills). The pass runs in training mode, as training
        steps do: BatchNorm with batch statistics gives the embeddings that the first batches will be
        compared with; it also moves BatchNorm's running statistics once, on un-augmented images (they are
        saved with the encoder). Every process fills the whole bank in the same order (identical under DDP).
        Skipped on resume: the bank is restored from the checkpoint."""
        bank = self.model.bank
        if bool(bank.filled):
            return
        ds = self.trainer.train_dataloader.dataset
        bs = max(2, int(getattr(self.trainer.train_dataloader, "batch_size", None) or 32))
        for start in range(0, len(ds), bs):
            items = [ds[i] for i in range(start, min(len(ds), start + bs))]
            x = torch.stack([it["image"] for it in items]).to(self.device)
            idx = torch.tensor([it["index"] for it in items], device=self.device)
            z, _ = self.model.embed(x, self.model.f)
            bank.fill(idx, z)
        bank.filled.fill_(True)

    def views(self, x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        v1, v2 = x, x
        if self.augment is not None:
            v1 = self.augment(x, None, g)[0]
            v2 = self.augment(x, None, g)[0]
        return v1, self.pretext(v2, g)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(self.hparams.seed) * 1_000_003 + int(self.global_step))
        v1, v2 = self.views(batch["image"], g)
        index = torch.as_tensor(batch["index"], device=v1.device)
        out = self.model(v1, v2, index, g)
        z, idx = out["z_image"], index
        if self.trainer is not None and self.trainer.world_size > 1:
            z, idx = self.all_gather(z).flatten(0, 1), self.all_gather(idx).flatten()
        self.model.bank.update(idx, z)
        b = v1.shape[0]
        for k, v in out.items():
            if k != "z_image":
                self.log(f"train_{k}" if k != "loss" else "train_loss", v, on_step=True, on_epoch=True,
                         prog_bar=k == "loss", batch_size=b)
        return out["loss"]


def _variant(name: str):
    """The registered factory of one variant: :class:`ContrastivePretraining` with that variant's loss
    defaults (:data:`sonokit.ssl.methods.VARIANTS`), which its keyword arguments may override."""
    @functools.wraps(ContrastivePretraining)
    def factory(**kw) -> ContrastivePretraining:
        return ContrastivePretraining(**{**VARIANTS[name], **kw, "method": name})

    factory.check_options = ContrastivePretraining.check_options
    factory.__doc__ = {"pirl": "PIRL: NCE with memory-bank negatives (Misra & van der Maaten 2020).",
                       "rcl": "PIRL's NCE terms + the Relation Contrastive Loss (Ellis et al. 2025).",
                       "rcl+perceptual": "RCL + a perceptual loss between the views' level-3 features, weight 0.1."}[name]
    return factory


for _name in VARIANTS:
    SSL_METHODS.register(_name)(_variant(_name))


SSL_METHODS.register("arl")(ARLPretraining)  # A-ViT's masked reconstruction + adversarial + self-distillation


def create_ssl_method(name: str, **kw) -> PretrainMethod:
    return SSL_METHODS.create(name, **kw)


def list_ssl_methods(pattern: str = "*") -> list[str]:
    return SSL_METHODS.list(pattern)
