"""Any sonokit encoder as SF-RecSAM's image encoder: ``image_encoder: avit_tiny_patch16`` (or any registered
encoder name) in place of SAM's ViT.

:class:`EncoderEmbedding` runs the encoder on the gray image in [0, 1] (its own input convention, not SAM's
pixel normalisation), takes its deepest feature map (B, C, g, g) - stride 16 for a ViT or an A-ViT, 32 for a
ResNet - applies the spatial-frequency fusion once on it (``fusion: sf | spatial | none``; SAM's encoder fuses
after each global block, a generic encoder has no such blocks) and maps it to SAM's 256-channel image embedding
with SAM's neck (1x1 conv -> LayerNorm2d -> 3x3 conv -> LayerNorm2d). SAM's prompt encoder and mask decoder
then work on that (B, 256, g, g) grid as on SAM's own.

An encoder that ``takes_organ`` (A-ViT with ACDT blocks) gets the batch's organ; without one it predicts the
organ itself (its organ head). Weights: ``encoder_init`` is loaded into the encoder as ``model.encoder_checkpoint``
is for the other models (the ``encoder.safetensors`` of ``sonokit pretrain``); ``sam_checkpoint`` then gives
SAM's prompt encoder and mask decoder only (:func:`.checkpoint.load_sam_decoder`). SAM's input adaptation
(``sam_variant``, ``patch_stride``, ``pos_adapt``) and adapters belong to SAM's ViT and are not used; its CNN
branch and Haar input are an error with another encoder.
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import ConfigError
from ..layers import encode, reads_organ
from .encoder import MIN_GRID, check_choice, sam_neck
from .fusion import FUSIONS, SpatialFrequencyFusion


class EncoderEmbedding(nn.Module):
    """A registered sonokit encoder -> SAM's image embedding (B, 256, g, g) (module docstring).

    Args:
        name: a registered encoder (``sonokit models``), e.g. ``avit_tiny_patch16``.
        img_size: the square input size; the grid g is img_size / the deepest map's stride.
        encoder_kwargs: further arguments of the encoder (``acdt_blocks``, ``n_organs``, ...).
        checkpoint: the encoder's weights (``encoder.safetensors`` of ``sonokit pretrain``), or None.
        fusion: ``"sf"``, ``"spatial"`` or ``"none"`` on the deepest map.
    """

    def __init__(self, name: str, *, img_size: int = 256, encoder_kwargs: dict | None = None,
                 checkpoint: str | None = None, fusion: str = "sf") -> None:
        super().__init__()
        from ..builder import build_encoder

        check_choice(fusion, FUSIONS, "fusion")
        self.encoder = build_encoder(name, in_chans=1, img_size=img_size, checkpoint=checkpoint,
                                     encoder_kwargs=encoder_kwargs)
        stride, C = int(self.encoder.reductions[-1]), int(self.encoder.out_channels[-1])
        if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size % stride \
                or img_size // stride < MIN_GRID:
            raise ConfigError(f"img_size must be a multiple of the image encoder '{name}''s stride {stride} giving a "
                              f"token grid of at least {MIN_GRID}x{MIN_GRID} (img_size >= {MIN_GRID * stride}); "
                              f"found {img_size!r}")
        self.name, self.img_size, self.grid = name, img_size, img_size // stride
        self.fusion = SpatialFrequencyFusion(C, self.grid, fusion) if fusion != "none" else None
        self.neck = sam_neck(C)

    @property
    def takes_organ(self) -> bool:
        return reads_organ(self.encoder)

    def forward(self, x: torch.Tensor, organ: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, 1, S, S) in [0, 1] (S = img_size); ``organ`` (B,) organ indices (-1 unknown) for an encoder that
        takes it -> (B, 256, g, g)."""
        if tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            raise ValueError(f"image encoder built for {self.img_size}x{self.img_size} inputs got "
                             f"{x.shape[-2]}x{x.shape[-1]}")
        f = encode(self.encoder, x, organ)[-1]  # (B, C, g, g)
        if self.fusion is not None:
            f = self.fusion(f.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # the fusion works on (B, g, g, C) tokens
        return self.neck(f)
