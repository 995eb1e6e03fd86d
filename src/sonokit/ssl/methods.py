"""SSL methods for encoder pretraining, registered by name: ``pirl``, ``rcl``, ``rcl+perceptual``.

All three share one model (Ellis et al. 2025, Fig. 1): an encoder Φ (any registered sonokit encoder; the
paper uses ResNet50), linear projection heads ``f`` (image view) and ``g`` (transformed view) to 128-d
unit vectors from the globally pooled last feature map, and a memory bank. They differ in the loss:

* ``pirl``: ``L = λ L_NCE(m_I, g(v_{I^t})) + (1 - λ) L_NCE(m_I, f(v_I))``  (PIRL Eq. 5, λ = 0.5);
* ``rcl``: ``L_pirl + w_rcl [λ L_RCL(g) + (1 - λ) L_RCL(f)]`` — the relation network's MSE on the same
  positive / memory-bank-negative pairs, added to the NCE terms;
* ``rcl+perceptual``: ``rcl`` plus ``w_p L_percep`` between the two views' level-3 features, w_p = 0.1.

The view pipeline (which pretext transformation ``t`` makes ``I^t``) is chosen separately, see
:mod:`sonokit.ssl.views`. Variants are data: each registered factory only fixes keyword arguments.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models.encoders import create_encoder
from .losses import RelationContrastiveLoss, estimate_log_z, nce_loss, perceptual_loss, pirl_loss
from .memory_bank import MemoryBank


class ContrastivePretrainer(nn.Module):
    """Encoder + f/g heads + memory bank + losses; ``forward`` returns a dict of loss terms.

    Args:
        encoder: registered encoder name (``sonokit.models.encoders.list_encoders()``).
        n_data: number of training images (memory-bank size, |D|).
        in_chans: input channels (1 for B-mode).
        encoder_weights: local ImageNet weights for the encoder (the paper starts from ImageNet).
        embed_dim: projection size (128 in PIRL and the paper).
        temperature: τ of the NCE score (0.07).
        momentum: memory-bank EMA coefficient μ (0.5).
        num_negatives: negatives per query drawn from the bank (PIRL: 32000; capped at |D| - 1, and 0 means
            |D| - 1), uniformly with replacement from the other images.
        lam: λ mixing the transformed-view and image-view terms (0.5).
        rcl_weight: weight of the Relation Contrastive Loss (0 disables it and its relation network).
        relation_hidden: hidden width of the relation network.
        perceptual_weight: weight of the perceptual loss (0 disables it).
        perceptual_level: encoder feature level compared by the perceptual loss (3 = ResNet ``layer3``).
        seed: seeds the memory bank's initial entries.
    """

    def __init__(self, encoder: str | dict = "resnet50", *, n_data: int, in_chans: int = 1, encoder_weights: str | None = None,
                 embed_dim: int = 128, temperature: float = 0.07, momentum: float = 0.5, num_negatives: int = 4096,
                 lam: float = 0.5, rcl_weight: float = 0.0, relation_hidden: int = 64, perceptual_weight: float = 0.0,
                 perceptual_level: int = 3, seed: int = 0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, found {temperature}")
        if not 0 <= lam <= 1:
            raise ValueError(f"lam must be in [0, 1], found {lam}")
        if rcl_weight < 0 or perceptual_weight < 0 or num_negatives < 0:
            raise ValueError("rcl_weight, perceptual_weight and num_negatives must be >= 0")
        if isinstance(encoder, dict):  # an encoder spec {name, **arguments} (the pretraining config's encoder)
            encoder = dict(encoder)
            self.encoder = create_encoder(encoder.pop("name"), **encoder)
        else:
            self.encoder = create_encoder(encoder, in_chans=in_chans, weights=encoder_weights)
        levels = len(self.encoder.out_channels)
        if perceptual_weight > 0 and not 0 <= perceptual_level < levels:
            enc_name = getattr(self.encoder, "name", encoder)
            raise ValueError(f"perceptual_level must be in [0, {levels - 1}] for encoder '{enc_name}', "
                             f"found {perceptual_level}")
        c = self.encoder.out_channels[-1]
        self.f = nn.Linear(c, embed_dim)  # image-view head (PIRL f)
        self.g = nn.Linear(c, embed_dim)  # transformed-view head (PIRL g)
        self.bank = MemoryBank(n_data, embed_dim, momentum=momentum, seed=seed)
        self.rcl = RelationContrastiveLoss(embed_dim, relation_hidden) if rcl_weight > 0 else None
        self.register_buffer("log_z", torch.tensor(float("nan")))  # NCE normaliser, fixed on the first batch
        self.temperature, self.num_negatives, self.lam = float(temperature), int(num_negatives), float(lam)
        self.rcl_weight, self.perceptual_weight, self.perceptual_level = float(rcl_weight), float(perceptual_weight), int(perceptual_level)

    def embed(self, x: torch.Tensor, head: nn.Linear) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = self.encoder(x)  # list of (B, C_l, h_l, w_l)
        z = F.normalize(head(feats[-1].mean(dim=(2, 3))), dim=1)  # (B, D) global average pool -> unit vector
        return z, feats

    def forward(self, image_view: torch.Tensor, transformed_view: torch.Tensor, index: torch.Tensor,
                generator: torch.Generator) -> dict[str, torch.Tensor]:
        """image_view, transformed_view (B, C, H, W); index (B,) memory-bank rows. Returns loss terms
        (``loss`` is the total) and ``z_image`` (B, D), the embedding to write into the bank."""
        zf, feats_f = self.embed(image_view, self.f)
        zg, feats_g = self.embed(transformed_view, self.g)
        pos = self.bank.positives(index)  # (B, D)
        neg = self.bank.negatives(index, self.num_negatives, generator)  # (B, N, D)
        sims = {name: ((z * pos).sum(1), torch.einsum("bd,bnd->bn", z, neg)) for name, z in (("g", zg), ("f", zf))}
        if torch.isnan(self.log_z):
            self.log_z.fill_(float(estimate_log_z(torch.cat([sims["f"][0], sims["g"][0]]),
                                                  torch.cat([sims["f"][1], sims["g"][1]]),
                                                  temperature=self.temperature, n_data=self.bank.size)))
        kw = dict(temperature=self.temperature, log_z=self.log_z, n_data=self.bank.size)
        out = {"nce": pirl_loss(nce_loss(*sims["g"], **kw), nce_loss(*sims["f"], **kw), lam=self.lam)}
        total = out["nce"]
        if self.rcl is not None:
            out["rcl"] = self.lam * self.rcl(zg, pos, neg) + (1 - self.lam) * self.rcl(zf, pos, neg)
            total = total + self.rcl_weight * out["rcl"]
        if self.perceptual_weight > 0:
            lvl = self.perceptual_level
            out["perceptual"] = perceptual_loss(feats_f[lvl], feats_g[lvl])
            total = total + self.perceptual_weight * out["perceptual"]
        out["loss"] = total
        out["z_image"] = zf.detach()
        return out


VARIANTS = {"pirl": {}, "rcl": {"rcl_weight": 1.0}, "rcl+perceptual": {"rcl_weight": 1.0, "perceptual_weight": 0.1}}


def contrastive_model(variant: str, **kw) -> ContrastivePretrainer:
    """The loss model of a registered variant (``pirl``, ``rcl``, ``rcl+perceptual``) with its defaults."""
    from ..registry import did_you_mean

    if variant not in VARIANTS:
        raise ConfigError(f"unknown SSL method '{variant}'{did_you_mean(variant, VARIANTS)} available: {', '.join(VARIANTS)}")
    if variant == "pirl" and (kw.get("rcl_weight") or kw.get("perceptual_weight")):
        raise ValueError("method 'pirl' has no relation or perceptual term; use 'rcl' or 'rcl+perceptual' to weight them")
    if variant == "rcl" and kw.get("perceptual_weight"):
        raise ValueError("method 'rcl' has no perceptual term; use 'rcl+perceptual' to weight it")
    return ContrastivePretrainer(**{**VARIANTS[variant], **kw})
