"""A-ViT as a sonokit encoder: ``forward(x, organ=None) -> [token maps]`` at stride 16 (as :mod:`..encoders.vit`).

Registered variants (ViT widths): ``avit_tiny_patch16`` (192, 12 blocks, 3 heads), ``avit_small_patch16``
(384, 12, 6), ``avit_base_patch16`` (768, 12, 12; the paper's ViT-B/16), ``avit_large_patch16`` (1024, 24, 16;
ViT-L/16, for FSDP). Models built on an encoder with
``takes_organ`` pass the batch's ``organ`` to it (:class:`sonokit.models.SegmentationModel`,
:class:`sonokit.models.ClassificationModel`); the organ head's logits of the last call are
:attr:`AViTEncoder.organ_logits`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..encoders import ENCODERS
from ..encoders.vit import check_img_size, check_out_indices
from .model import AViT

# registered name -> (embed_dim, depth, num_heads)
AVIT_VARIANTS: dict[str, tuple[int, int, int]] = {
    "avit_tiny_patch16": (192, 12, 3),
    "avit_small_patch16": (384, 12, 6),
    "avit_base_patch16": (768, 12, 12),
    "avit_large_patch16": (1024, 24, 16),  # ViT-L/16: train it with trainer.strategy fsdp on GPUs
}


class AViTEncoder(nn.Module):
    """Token maps (B, D, H / 16, W / 16) of the blocks ``out_indices`` of an :class:`~.model.AViT`; the
    weights live under ``model.*``."""

    def __init__(self, name: str, *, img_size: int = 224, in_chans: int = 1, out_indices: Sequence[int] | None = None,
                 drop_path_rate: float = 0.0, acdt_blocks: str | Sequence[int] = "all", n_organs: int = 16,
                 organ_head: bool = True, kernel: int = 3, offset_range: float = 2.0) -> None:
        super().__init__()
        dim, depth, heads = AVIT_VARIANTS[name]
        img_size = check_img_size(img_size)
        indices = check_out_indices(out_indices, depth)
        self.model = AViT(img_size=img_size, in_chans=in_chans, embed_dim=dim, depth=depth, num_heads=heads,
                          drop_path_rate=drop_path_rate, acdt_blocks=acdt_blocks, n_organs=n_organs,
                          organ_head=organ_head, kernel=kernel, offset_range=offset_range)
        self.name, self.out_indices, self.patch_size = name, indices, 16
        self.out_channels: list[int] = [dim] * len(indices)
        self.reductions: list[int] = [16] * len(indices)
        self.spec: dict = {"name": name, "img_size": img_size, "in_chans": in_chans, "out_indices": list(indices),
                           "drop_path_rate": float(drop_path_rate),
                           "acdt_blocks": acdt_blocks if isinstance(acdt_blocks, str) else list(acdt_blocks),
                           "n_organs": n_organs, "organ_head": organ_head, "kernel": kernel,
                           "offset_range": offset_range}

    @property
    def takes_organ(self) -> bool:
        """Whether the organ matters: the encoder has ACDT blocks (``acdt_blocks: none`` is a plain ViT)."""
        return bool(self.model.acdt)

    @property
    def organ_logits(self) -> torch.Tensor | None:
        return self.model.organ_logits

    def forward(self, x: torch.Tensor, organ: torch.Tensor | None = None) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, organ, self.out_indices)


def _register(name: str) -> None:
    dim, depth, heads = AVIT_VARIANTS[name]

    def factory(*, img_size: int = 224, in_chans: int = 1, weights: str | None = None,
                out_indices: Sequence[int] | None = None, drop_path_rate: float = 0.0,
                acdt_blocks: str | list[int] = "all", n_organs: int = 16, organ_head: bool = True, kernel: int = 3,
                offset_range: float = 2.0) -> AViTEncoder:
        if weights is not None:
            from ...errors import ConfigError

            raise ConfigError(f"encoder '{name}' has no timm weights; start it from a sonokit pretraining "
                              "(model.encoder_checkpoint: the encoder.safetensors of `sonokit pretrain`)")
        return AViTEncoder(name, img_size=img_size, in_chans=in_chans, out_indices=out_indices,
                           drop_path_rate=drop_path_rate, acdt_blocks=acdt_blocks, n_organs=n_organs,
                           organ_head=organ_head, kernel=kernel, offset_range=offset_range)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = (f"A-ViT ({dim} wide, {depth} blocks, {heads} heads; ACDT blocks conditioned on the organ): "
                       "token maps of 4 blocks at stride 16; img_size a multiple of 16.")
    ENCODERS.register(name, init_only=("weights",))(factory)


for _name in AVIT_VARIANTS:
    _register(_name)
