"""Parameter-efficient adaptation of SAM's ViT blocks: bottleneck adapters and SAMUS's CNN branch.

* :class:`Adapter` — a bottleneck MLP (``dim -> ratio * dim -> dim``, GELU) whose up-projection is
  zero-initialised, so a model with adapters computes exactly what SAM computes until training moves them
  (Houlsby et al. 2019; Medical SAM Adapter, Wu et al. 2023; SAMUS, Lin et al. 2023).
* :class:`AdaptedBlock` — segment_anything's ViT ``Block`` (same parameter names, so official checkpoints
  load into it) with an adapter parallel to the MLP, ``x + mlp(norm2(x)) + 0.5 * adapter(norm2(x))`` (the
  MSA / SAMUS placement and scale), and in the global-attention blocks, when the CNN branch is on, a
  cross-attention adapter from the tokens to the CNN branch's tokens (SAMUS's "space adapter").
* :class:`CNNBranch` — SAMUS's parallel convolutional branch: a conv block at full resolution, a multi-scale
  attention gate, then down-sampling to the token grid. The encoder adds ``0.5 * cnn`` to the tokens after the
  last block (SAMUS, and the SF-RecSAM code ``model/segment_anything_sfrecsam/image_encoder.py``, which also
  feeds a wavelet high-frequency image through the same branch: ``hf_input``).

Every parameter name contains ``adapter`` or ``cnn_branch``, so ``optim.unfreeze: ['*adapter*',
'*cnn_branch*']`` selects them. Written for sonokit after reading xianlin7/SAMUS and dodooo1/SFRecSAM.
"""
from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.image_encoder import Block, window_partition, window_unpartition
from torch import nn

ADAPTER_SCALE = 0.5  # the MLP adapter's weight beside the block's MLP (MSA, SAMUS)
CNN_SCALE = 0.5  # the CNN branch's weight when added to the tokens (SAMUS)


class Adapter(nn.Module):
    """Bottleneck MLP adapter on the last axis: ``up(gelu(down(x)))`` (+ ``x`` when ``skip``).

    ``up`` is zero-initialised: at initialisation the adapter adds nothing. Shapes: (..., dim) -> (..., dim).
    """

    def __init__(self, dim: int, ratio: float = 0.25, *, skip: bool = False) -> None:
        super().__init__()
        hidden = max(1, int(round(dim * ratio)))
        self.down = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.up = nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(self.act(self.down(x)))
        return x + y if self.skip else y


class CrossAttentionAdapter(nn.Module):
    """Multi-head cross-attention from the ViT tokens (queries) to the CNN branch's tokens (keys, values).

    Shapes: tokens (B, H, W, C), cnn (B, H, W, C) -> (B, H, W, C), the value added to the tokens. The output
    projection is zero-initialised, so the adapter adds nothing at initialisation (SAMUS's space adapter adds a
    randomly initialised attention; sonokit starts from SAM's function instead).
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, tokens: torch.Tensor, cnn: torch.Tensor) -> torch.Tensor:
        B, H, W, C = tokens.shape
        h = self.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:  # (B, H, W, C) -> (B, h, H*W, C/h)
            return t.reshape(B, H * W, h, C // h).transpose(1, 2)

        y = F.scaled_dot_product_attention(heads(self.q(tokens)), heads(self.k(cnn)), heads(self.v(cnn)))
        return self.proj(y.transpose(1, 2).reshape(B, H, W, C))  # (B, H, W, C)


def conv_ln_gelu(cin: int, cout: int) -> nn.Sequential:
    """3x3 conv (no bias) -> LayerNorm2d -> GELU; (B, cin, H, W) -> (B, cout, H, W)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), LayerNorm2d(cout), nn.GELU())


class AdaptedBlock(Block):
    """segment_anything's ViT block with adapters (see the module docstring).

    Args:
        dim, num_heads, window_size, input_size: as ``segment_anything.modeling.image_encoder.Block``
            (``window_size`` 0 is a global-attention block over ``input_size`` tokens).
        adapter: add the parallel MLP adapter (``adapter.*``).
        adapter_ratio: its bottleneck width relative to ``dim``.
        cross_adapter: add the cross-attention adapter to the CNN tokens and a residual conv that refines the
            CNN tokens for the next global block (``cross_adapter.*``, ``cnn_adapter.*``).

    ``forward(x, cnn)``: x (B, H, W, dim) tokens, cnn (B, H, W, dim) or None -> (x, cnn).
    """

    def __init__(self, *, dim: int, num_heads: int, window_size: int, input_size: tuple[int, int],
                 adapter: bool = True, adapter_ratio: float = 0.25, cross_adapter: bool = False) -> None:
        super().__init__(dim=dim, num_heads=num_heads, mlp_ratio=4.0, qkv_bias=True,
                         norm_layer=partial(nn.LayerNorm, eps=1e-6), act_layer=nn.GELU, use_rel_pos=True,
                         rel_pos_zero_init=True, window_size=window_size, input_size=input_size)
        self.adapter = Adapter(dim, adapter_ratio) if adapter else None
        self.cross_adapter = CrossAttentionAdapter(dim, num_heads) if cross_adapter else None
        self.cnn_adapter = conv_ln_gelu(dim, dim) if cross_adapter else None

    def forward(self, x: torch.Tensor, cnn: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        shortcut = x
        x = self.norm1(x)
        if self.cross_adapter is not None and cnn is not None:
            x = x + self.cross_adapter(x, cnn)
            cnn = cnn + self.cnn_adapter(cnn.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # residual refinement
        if self.window_size > 0:
            H, W = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window_size)  # (B * n_windows, ws, ws, C)
            x = window_unpartition(self.attn(x), self.window_size, pad_hw, (H, W))
        else:
            x = self.attn(x)
        x = shortcut + x
        xn = self.norm2(x)
        x = x + self.mlp(xn)
        if self.adapter is not None:
            x = x + ADAPTER_SCALE * self.adapter(xn)
        return x, cnn


class MultiScaleGate(nn.Module):
    """Multi-scale attention gate (SAMUS / SF-RecSAM's MSAG): 1x1, 3x3 and dilated 3x3 convs (each + BN),
    concatenated, ReLU, a 1x1 conv + BN + sigmoid: a gate in (0, 1). (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.point = nn.Sequential(nn.Conv2d(c, c, 1), nn.BatchNorm2d(c))
        self.local = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))
        self.dilated = nn.Sequential(nn.Conv2d(c, c, 3, padding=2, dilation=2), nn.BatchNorm2d(c))
        self.vote = nn.Sequential(nn.Conv2d(3 * c, c, 1), nn.BatchNorm2d(c), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vote(F.relu(torch.cat([self.point(x), self.local(x), self.dilated(x)], 1)))


class CNNBranch(nn.Module):
    """SAMUS's CNN branch: image (B, 3, S, S) -> tokens (B, S / stride, S / stride, embed_dim).

    conv block (2x [3x3 conv -> BN -> ReLU], 3 -> ``width``) -> ``f + 0.5 * f * gate(f)`` (multi-scale gate)
    -> log2(``stride``) x [2x2 max-pool -> 3x3 conv -> LayerNorm2d -> GELU], the width doubling each time and
    the last one giving ``embed_dim``. With a high-frequency image ``hf`` (``hf_input``), the same layers run
    on it and the two token maps are summed (as the SF-RecSAM code does).
    """

    def __init__(self, embed_dim: int, stride: int, *, width: int = 64) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.gate = MultiScaleGate(width)
        n = int(math.log2(stride))
        chans = [width * 2 ** i for i in range(n)] + [embed_dim]
        self.down = nn.Sequential(*[nn.Sequential(nn.MaxPool2d(2), conv_ln_gelu(chans[i], chans[i + 1]))
                                    for i in range(n)])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        f = self.conv(x)  # (B, width, S, S)
        f = f + CNN_SCALE * f * self.gate(f)
        return self.down(f).permute(0, 2, 3, 1)  # (B, S/stride, S/stride, embed_dim)

    def forward(self, x: torch.Tensor, hf: torch.Tensor | None = None) -> torch.Tensor:
        t = self.embed(x)
        return t if hf is None else t + self.embed(hf)
