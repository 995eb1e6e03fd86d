"""Perceptual loss between the two views' intermediate encoder features (Ellis et al. 2025, Sec. III-C).

    L_percep = mean ‖Φ_l(I_t1) - Φ_l(I^p_t2)‖²

with ``Φ_l`` the encoder's feature map at level ``l``. The paper takes "layer 40" of its ResNet50; read as
the 40th convolution of the main path (torchvision numbering: ``layer3.5.conv3``), that is the output of
``layer3`` (1024 channels, stride 16) — level 3 of sonokit's encoders (``features_only`` levels are
0: stem, 1: layer1, 2: layer2, 3: layer3, 4: layer4). The level is a parameter. Both views pass through
the same encoder, so the loss pulls their mid-level features together (invariance to the pretext
transform at the texture level) while the contrastive terms keep images apart.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def perceptual_loss(feat_a: torch.Tensor, feat_b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of two (B, C, h, w) feature maps of equal shape."""
    if feat_a.shape != feat_b.shape:
        raise ValueError(f"perceptual loss needs feature maps of equal shape; found {tuple(feat_a.shape)} and {tuple(feat_b.shape)}")
    return F.mse_loss(feat_a.float(), feat_b.float())
