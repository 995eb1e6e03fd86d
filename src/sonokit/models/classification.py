"""Image classification: encoder -> deepest map -> global average pool -> [BatchNorm] -> dropout -> linear head."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .builder import INIT_ONLY, MODELS, build_encoder
from .layers import check_positive, encode, reads_organ


class ClassificationModel(nn.Module):
    """Logits from the encoder's deepest feature map.

    Parameters live under ``encoder.*`` and ``head.*`` (a linear probe freezes ``encoder.*``). ``probe_norm``
    puts a BatchNorm without affine parameters between the pooled features and the head, as MAE and MoCo v3 do
    for linear probing: a frozen ViT's pooled features share a large per-channel offset and vary little between
    images, which a linear head trained for a few epochs cannot use (``head_norm.*`` holds only its statistics).

    Shapes: (B, in_chans, H, W) -> deepest map (B, C, h, w) -> pooled (B, C) -> logits (B, num_classes).
    """

    def __init__(self, encoder: nn.Module, num_classes: int = 2, *, dropout: float = 0.0,
                 probe_norm: bool = False) -> None:
        super().__init__()
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), found {dropout}")
        self.encoder = encoder
        self.dropout = nn.Dropout(float(dropout))
        width = encoder.out_channels[-1]
        self.head_norm = nn.BatchNorm1d(width, affine=False) if probe_norm else nn.Identity()
        self.head = nn.Linear(width, num_classes)
        self.num_classes = num_classes

    @property
    def batch_inputs(self) -> tuple[str, ...]:
        """Batch keys the model reads besides the image (training passes them)."""
        return ("organ",) if reads_organ(self.encoder) else ()

    def forward(self, x: torch.Tensor, organ: torch.Tensor | None = None) -> torch.Tensor:
        """``organ`` (B,) organ indices (-1 unknown) reach an encoder that ``takes_organ`` (A-ViT)."""
        if x.ndim != 4:
            raise ValueError(f"expected input of shape (B, C, H, W), found {tuple(x.shape)}")
        feat = encode(self.encoder, x, organ)[-1]  # (B, C, h, w)
        return self.head(self.dropout(self.head_norm(feat.mean(dim=(2, 3)))))  # (B, C) -> (B, num_classes)


@MODELS.register("classifier", init_only=INIT_ONLY)
def classifier(encoder: str = "resnet18", *, in_chans: int = 1, num_classes: int = 2, img_size: int | None = None,
               encoder_weights: str | None = None, encoder_checkpoint: str | None = None,
               encoder_kwargs: dict | None = None, dropout: float = 0.0,
               probe_norm: bool = False) -> ClassificationModel:
    """Classifier on any encoder: global average pool of the deepest map -> dropout -> linear head.

    Args: ``encoder``, ``in_chans``, ``img_size``, ``encoder_weights``, ``encoder_checkpoint`` and
    ``encoder_kwargs`` as in :func:`sonokit.models.segmentation.unet`; ``num_classes`` logits; ``dropout`` before
    the head; ``probe_norm`` a BatchNorm without affine parameters before it (a linear probe's default: a
    run with ``linear_probe: true`` sets it unless the config does).
    """
    check_positive(num_classes, "num_classes")
    enc = build_encoder(encoder, in_chans=in_chans, img_size=img_size, weights=encoder_weights,
                        checkpoint=encoder_checkpoint, encoder_kwargs=encoder_kwargs)
    return ClassificationModel(enc, num_classes, dropout=dropout, probe_norm=bool(probe_norm))
