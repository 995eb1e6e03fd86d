"""Plain Vision Transformers (Dosovitskiy et al. 2021) from timm as encoders: token maps of a few blocks.

A ViT is single-scale: every returned map has stride 16 (the patch size). Segmentation models put a
feature-pyramid neck after it (:mod:`sonokit.models.necks.pyramid`, ViTDet) so a multi-scale decoder fits.
Variants are data: each registered name maps to a timm architecture and its depth.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import timm
import torch
from timm.models.vision_transformer import checkpoint_filter_fn
from torch import nn

from ...errors import CheckpointError, ConfigError
from . import ENCODERS
from .checkpoint import load_timm_weights

PATCH = 16

# registered name -> (timm architecture whose official checkpoints `weights` may hold, number of blocks)
VIT_VARIANTS: dict[str, tuple[str, int]] = {
    "vit_tiny_patch16": ("vit_tiny_patch16_224", 12),
    "vit_small_patch16": ("vit_small_patch16_224", 12),
    "vit_base_patch16": ("vit_base_patch16_224", 12),
    "vit_large_patch16": ("vit_large_patch16_224", 24),
}


def check_img_size(img_size: object, patch: int = PATCH) -> int:
    """``img_size`` as an int, or a :class:`ConfigError` naming the nearest multiples of the patch size."""
    if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < patch:
        raise ConfigError(f"img_size must be an integer multiple of the patch size {patch} (e.g. 64, 128, 224); "
                          f"found {img_size!r}")
    if img_size % patch:
        lo, hi = img_size // patch * patch, (img_size // patch + 1) * patch
        raise ConfigError(f"img_size {img_size} is not a multiple of the patch size {patch}; "
                          f"use {lo} or {hi}")
    return img_size


def default_out_indices(depth: int, n: int = 4) -> tuple[int, ...]:
    """``n`` evenly spaced blocks ending with the last: (2, 5, 8, 11) for 12 blocks, (5, 11, 17, 23) for 24."""
    return tuple((i + 1) * depth // n - 1 for i in range(n))


def check_out_indices(out_indices: Sequence[int] | None, depth: int) -> tuple[int, ...]:
    """Block indices (negative ones count from the end) -> increasing, non-negative, or a ConfigError."""
    if out_indices is None:
        return default_out_indices(depth)
    if isinstance(out_indices, (str, bytes)) or not isinstance(out_indices, Sequence) or not out_indices:
        raise ConfigError(f"out_indices must be a non-empty list of block indices in [0, {depth - 1}]; "
                          f"found {out_indices!r}")
    idx = []
    for i in out_indices:
        if isinstance(i, bool) or not isinstance(i, int) or not -depth <= i < depth:
            raise ConfigError(f"out_indices {list(out_indices)}: {i!r} is not a block of this {depth}-block ViT; "
                              f"expected integers in [0, {depth - 1}] (or negative, from the end)")
        idx.append(i % depth)
    if idx != sorted(set(idx)):
        raise ConfigError(f"out_indices must be increasing (shallow to deep) without repeats; "
                          f"found {list(out_indices)}")
    return tuple(idx)


class ViTEncoder(nn.Module):
    """A timm ViT returning the token maps of blocks ``out_indices`` as (B, C, H / 16, W / 16) each.

    Args:
        name: the registered name (``spec["name"]``), e.g. ``"vit_tiny_patch16"``.
        timm_name: the timm architecture, e.g. ``"vit_tiny_patch16_224"``.
        img_size: the training input size (a multiple of 16): it sets the learned position embedding's grid.
            Other multiples of 16 also work at run time (the embedding is resampled on the fly).
        in_chans: input channels (1 for B-mode).
        weights: a local timm-format or official checkpoint of ``timm_name`` (``.pth``/``.bin``/``.safetensors``,
            3 channels at 224 px): timm resamples its position embedding to ``img_size`` and sums the RGB patch
            convolution to ``in_chans`` = 1. None means random initialisation; nothing is downloaded.
        out_indices: blocks whose outputs are returned (shallow to deep); default 4 evenly spaced blocks.
            Blocks after the last one, the final norm and the classifier are dropped.
        drop_path_rate: stochastic depth rate of the deepest block (linearly increasing with depth).

    Shapes: (B, in_chans, H, W), H and W multiples of 16 -> ``len(out_indices)`` maps (B, embed_dim, H/16, W/16).
    Weights live under ``model.*`` (timm's key names).
    """

    def __init__(self, name: str, timm_name: str, *, img_size: int = 224, in_chans: int = 1,
                 weights: str | Path | None = None, out_indices: Sequence[int] | None = None,
                 drop_path_rate: float = 0.0, depth: int | None = None) -> None:
        super().__init__()
        img_size = check_img_size(img_size)
        if depth is not None:
            out_indices = check_out_indices(out_indices, depth)  # fail before a large model is allocated
        if not 0.0 <= float(drop_path_rate) < 1.0:
            raise ConfigError(f"drop_path_rate must be in [0, 1), found {drop_path_rate}")
        if weights is not None and not Path(weights).exists():
            raise CheckpointError(f"encoder weights '{weights}' do not exist; expected a .pth/.bin/.safetensors file "
                                  f"of timm '{timm_name}'")
        model = timm.create_model(timm_name, img_size=img_size, in_chans=in_chans, num_classes=0,
                                  dynamic_img_size=True, drop_path_rate=float(drop_path_rate))
        if weights is not None:
            load_timm_vit_weights(model, weights, in_chans=in_chans, what=f"encoder '{name}' (timm '{timm_name}', "
                                                                         f"img_size {img_size}, in_chans {in_chans})")
        indices = check_out_indices(out_indices, len(model.blocks))
        model.prune_intermediate_layers(list(indices), prune_norm=True, prune_head=True)  # after loading weights
        self.model = model
        self.name, self.out_indices, self.patch_size = name, indices, PATCH
        self.out_channels: list[int] = [int(model.embed_dim)] * len(indices)
        self.reductions: list[int] = [PATCH] * len(indices)
        self.spec: dict = {"name": name, "img_size": img_size, "in_chans": in_chans, "out_indices": list(indices),
                           "drop_path_rate": float(drop_path_rate)}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4:
            raise ValueError(f"expected input of shape (B, C, H, W), found {tuple(x.shape)}")
        H, W = x.shape[-2:]
        if H % PATCH or W % PATCH:
            fit = f"{max(H // PATCH, 1) * PATCH}x{max(W // PATCH, 1) * PATCH}"
            raise ValueError(f"encoder '{self.name}' needs H and W that are multiples of the patch size {PATCH}; "
                             f"found {H}x{W} (resize or pad, e.g. to {fit})")
        return self.model.forward_intermediates(x, indices=list(self.out_indices), output_fmt="NCHW",
                                                intermediates_only=True)  # [(B, C, H/16, W/16)] per block


def load_timm_vit_weights(model: nn.Module, weights: str | Path, *, in_chans: int, what: str) -> None:
    """Load a timm-format / official ViT checkpoint into ``model`` (a timm VisionTransformer without classifier).

    The file is read with :func:`sonokit.serialization.load_weights` and handed to timm's own loader with the
    ViT ``checkpoint_filter_fn`` (:func:`.checkpoint.load_timm_weights`): it resamples the position embedding to
    the model's grid and sums the RGB patch convolution to ``in_chans``; any key the file lacks or has beyond
    the classifier is a :class:`CheckpointError`.
    """
    p = Path(weights)
    if not p.exists():
        raise CheckpointError(f"encoder weights '{p}' do not exist; expected a .pth/.bin/.safetensors file for {what}")
    load_timm_weights(model, p, in_chans=in_chans, what=what, filter_fn=checkpoint_filter_fn,
                      architecture="ViT architecture")


def _register(name: str, timm_name: str, depth: int) -> None:
    def factory(*, img_size: int = 224, in_chans: int = 1, weights: str | None = None,
                out_indices: Sequence[int] | None = None, drop_path_rate: float = 0.0) -> ViTEncoder:
        return ViTEncoder(name, timm_name, img_size=img_size, in_chans=in_chans, weights=weights,
                          out_indices=out_indices, drop_path_rate=drop_path_rate, depth=depth)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = (f"ViT ({timm_name}, {depth} blocks): token maps of 4 blocks at stride 16; img_size a "
                       f"multiple of 16; weights: a local timm checkpoint.")
    ENCODERS.register(name, init_only=("weights",))(factory)


for _name, (_timm, _depth) in VIT_VARIANTS.items():
    _register(_name, _timm, _depth)
