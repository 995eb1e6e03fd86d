"""A-ViT (ICLR 2026): a ViT whose chosen blocks are ACDT blocks conditioned on the imaged organ.

patch embedding (timm ``PatchEmbed``, gray input) + CLS token + learned position embedding (resampled for other
input sizes) -> blocks, each a timm ViT ``Block`` or an :class:`~.acdt.ACDTBlock` (``acdt_blocks``) -> LayerNorm.

**The organ.** ``organ`` is a (B,) index into the vocabulary (:mod:`sonokit.data.organs`), -1 for unknown, or
None (all unknown). The ACDT blocks see a distribution over the vocabulary: the one-hot of a known organ, and for
an unknown one the softmax of the **organ head** (a linear classifier on the mean patch token entering the first
ACDT block), so the context is the probability-weighted AC (the paper needs the organ at inference: its stated
limitation). ``organ_head=False`` makes an unknown organ an error. The head's logits of the last call are kept
(:attr:`AViT.organ_logits`) for its training loss and for reporting organ-prediction accuracy.

``forward_features(x, organ)`` returns the final normalised tokens (B, 1 + N, C), as timm's ViTs do;
``forward_intermediates(x, organ, indices)`` the token maps (B, C, h, w) of the given blocks.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed, resample_abs_pos_embed, trunc_normal_
from timm.models.vision_transformer import Block
from torch import nn

from ...errors import ConfigError
from .acdt import ACDTBlock


def acdt_indices(spec: str | Sequence[int], depth: int) -> tuple[int, ...]:
    """Which blocks are ACDT blocks: ``"all"``, ``"none"``, ``"last_half"``, ``"every_other"`` or a list."""
    named = {"all": range(depth), "none": (), "last_half": range(depth // 2, depth),
             "every_other": range(1, depth, 2)}
    if isinstance(spec, str):
        if spec not in named:
            raise ConfigError(f"acdt_blocks '{spec}' is not one of {sorted(named)} or a list of block indices")
        return tuple(named[spec])
    idx = sorted({int(i) % depth for i in spec})
    if any(not -depth <= int(i) < depth for i in spec):
        raise ConfigError(f"acdt_blocks {list(spec)}: indices must be in [0, {depth - 1}]")
    return tuple(idx)


class AViT(nn.Module):
    """Args:
        img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio, drop_path_rate: a ViT's.
        acdt_blocks: which blocks are ACDT (:func:`acdt_indices`).
        n_organs: the organ vocabulary's size (16: the paper's classes, sonokit's default vocabulary).
        organ_head: predict the organ when it is not given.
        kernel, offset_range: the ACDT deformable sampling (:class:`~.acdt.ACDTBlock`).
    """

    def __init__(self, *, img_size: int = 224, patch_size: int = 16, in_chans: int = 1, embed_dim: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0,
                 acdt_blocks: str | Sequence[int] = "all", n_organs: int = 16, organ_head: bool = True,
                 kernel: int = 3, offset_range: float = 2.0) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ConfigError(f"img_size {img_size} is not a multiple of the patch size {patch_size}")
        self.patch_size, self.embed_dim, self.n_organs = patch_size, embed_dim, n_organs
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim, strict_img_size=False)
        self.grid = (img_size // patch_size, img_size // patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], embed_dim))
        self.acdt = acdt_indices(acdt_blocks, depth)
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # linear, as timm
        self.blocks = nn.ModuleList([
            ACDTBlock(embed_dim, num_heads, n_organs=n_organs, mlp_ratio=mlp_ratio, drop_path=dpr[i], kernel=kernel,
                      offset_range=offset_range) if i in self.acdt
            else Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, drop_path=dpr[i])
            for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.organ_head = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, n_organs)) \
            if organ_head and self.acdt else None
        self.organ_logits: torch.Tensor | None = None
        trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)

    # --- pieces ---------------------------------------------------------------------------------------------
    def embed(self, x: torch.Tensor, mask: torch.Tensor | None = None,
              mask_token: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, C, H, W) -> tokens (B, 1 + h w, D) with position embedding, and the grid (h, w). With ``mask``
        (B, h w) bool, masked patches' embeddings are replaced by ``mask_token`` (D,) before the position
        embedding is added (SimMIM: the grid stays whole, as the ACDT blocks need it)."""
        if x.ndim != 4:
            raise ValueError(f"A-ViT expects (B, C, H, W) images; found {tuple(x.shape)}")
        H, W = x.shape[-2:]
        if H % self.patch_size or W % self.patch_size:
            raise ValueError(f"A-ViT needs H and W that are multiples of the patch size {self.patch_size}; "
                             f"found {H}x{W}")
        t = self.patch_embed(x)  # (B, h w, D)
        if mask is not None:
            t = torch.where(mask[..., None], mask_token.to(t.dtype).view(1, 1, -1), t)
        grid = (H // self.patch_size, W // self.patch_size)
        pos = self.pos_embed if grid == self.grid else resample_abs_pos_embed(
            self.pos_embed, list(grid), list(self.grid), num_prefix_tokens=1)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], 1)
        return t + pos, grid

    def organ_distribution(self, tokens: torch.Tensor, organ: torch.Tensor | None) -> torch.Tensor:
        """(B, n_organs): one-hot for known organs, the organ head's softmax for unknown ones (-1 / None)."""
        B = tokens.shape[0]
        known = torch.full((B,), -1, dtype=torch.long, device=tokens.device) if organ is None \
            else organ.to(tokens.device).long().view(-1)
        if known.numel() != B:
            raise ValueError(f"organ has {known.numel()} entries for a batch of {B}")
        if (known >= self.n_organs).any():
            raise ConfigError(f"organ index {int(known.max())} is outside the {self.n_organs}-organ vocabulary")
        self.organ_logits = self.organ_head(tokens[:, 1:].mean(1)) if self.organ_head is not None else None
        dist = F.one_hot(known.clamp(min=0), self.n_organs).to(tokens.dtype)
        unknown = known < 0
        if unknown.any():
            if self.organ_logits is None:
                raise ConfigError("the organ of an image is unknown and this A-ViT has no organ head "
                                  "(organ_head: false); give the organ (data.organs / the dataset's anatomy)")
            dist = torch.where(unknown[:, None], self.organ_logits.softmax(-1).to(dist.dtype), dist)
        return dist

    def run_blocks(self, x: torch.Tensor, organ: torch.Tensor | None, indices: Sequence[int] = (),
                   mask: torch.Tensor | None = None, mask_token: torch.Tensor | None = None):
        """Returns (final normalised tokens, {index: tokens after that block}, grid); ``mask``: :meth:`embed`."""
        t, grid = self.embed(x, mask, mask_token)
        dist, keep = None, {}
        for i, blk in enumerate(self.blocks):
            if isinstance(blk, ACDTBlock):
                if dist is None:
                    dist = self.organ_distribution(t, organ)
                t = blk(t, dist, grid)
            else:
                t = blk(t)
            if i in indices:
                keep[i] = t
        if dist is None:
            self.organ_logits = None
        return self.norm(t), keep, grid

    # --- timm-style API -------------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor, organ: torch.Tensor | None = None) -> torch.Tensor:
        return self.run_blocks(x, organ)[0]

    def forward_intermediates(self, x: torch.Tensor, organ: torch.Tensor | None = None,
                              indices: Sequence[int] = (11,)) -> list[torch.Tensor]:
        """Token maps (B, D, h, w) after the blocks ``indices`` (the last one normalised, as timm does)."""
        idx = [int(i) % len(self.blocks) for i in indices]
        final, keep, (h, w) = self.run_blocks(x, organ, idx)
        last = len(self.blocks) - 1
        maps = []
        for i in idx:
            t = final if i == last else keep[i]
            maps.append(t[:, 1:].transpose(1, 2).reshape(t.shape[0], -1, h, w))
        return maps

    def forward(self, x: torch.Tensor, organ: torch.Tensor | None = None) -> torch.Tensor:
        """The CLS token of the final tokens (B, D)."""
        return self.forward_features(x, organ)[:, 0]
