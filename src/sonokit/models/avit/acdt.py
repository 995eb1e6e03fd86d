"""The Anatomy-Conditional Deformable Transformer block (ACDT; A-ViT, ICLR 2026, Sec. 3.2).

For patch tokens ``x_f`` (B, N, C) on an (h, w) grid and an organ distribution ``o`` (B, n_organs) — a one-hot
vector when the organ is known, the organ head's probabilities when it is not:

1. ``x_P``: the (normalised) patch tokens as a (B, C, h, w) map;
2. anatomical context ``AC = W_ac o + b`` (a linear map of the one-hot, per block), broadcast over the grid:
   ``x_{P,AC} = x_P + AC``;
3. offsets ``Δp_k = g_θ(x_{P,AC})``: DAT's offset network (Xia et al. 2022) — depthwise k x k conv ->
   LayerNorm -> GELU -> 1 x 1 conv to 2K channels — bounded by ``tanh · offset_range`` (in tokens);
4. ``y_P(p) = Σ_k w_k ⊙ S(x_P, p + p_k + Δp_k)``: S bilinear sampling (``grid_sample``, zeros outside), ``p_k``
   the taps of a ``kernel`` x ``kernel`` grid (a deformable convolution, Dai et al. 2017: the paper's Eq. writes
   ``p + Δp_k``, i.e. the taps folded into the offsets; with them the block starts as a depthwise conv instead of
   K copies of one sample), ``w_k`` per-channel weights (a depthwise deformable conv), then a 1 x 1 projection;
5. attention with queries from ``x_P`` (and the prefix tokens, e.g. CLS) and keys / values from ``y_P`` (and the
   prefix tokens): ``Softmax((x_P W^Q)(y_P W^K)^T / sqrt(d_k)) (y_P W^V)`` (the paper's DeformAttn), multi-head;
6. residual, then the usual pre-norm MLP with residual (as a ViT block).

Shapes: tokens (B, P + h w, C) with P prefix tokens -> (B, P + h w, C). :meth:`ACDTBlock.last_offsets` keeps
the offsets (B, K, 2, h, w) of the last call, for the organ-conditioning checks and plots.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import nn

from ...errors import ConfigError


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class OffsetNet(nn.Module):
    """DAT's offset network: (B, C, h, w) -> offsets (B, K, 2, h, w) in tokens, each in (-range, range).
    The last conv starts at zero, so the block starts with the regular kernel taps."""

    def __init__(self, dim: int, points: int, *, kernel: int = 5, offset_range: float = 2.0) -> None:
        super().__init__()
        self.points, self.offset_range = points, float(offset_range)
        self.net = nn.Sequential(nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim), LayerNorm2d(dim),
                                 nn.GELU(), nn.Conv2d(dim, 2 * points, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, h, w = x.shape
        return (torch.tanh(self.net(x)) * self.offset_range).view(B, self.points, 2, h, w)  # (dx, dy) per point


def kernel_taps(kernel: int) -> torch.Tensor:
    """(K, 2) (dx, dy) taps of a kernel x kernel grid centred on 0, row-major."""
    r = torch.arange(kernel, dtype=torch.float32) - (kernel - 1) / 2
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([dx.reshape(-1), dy.reshape(-1)], 1)


def deformable_sample(x: torch.Tensor, offsets: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """``S(x, p + p_k + Δp_k)`` for every token p and tap k.

    x (B, C, h, w); offsets (B, K, 2, h, w) in tokens; taps (K, 2) -> (B, C, K, h, w), bilinear, zeros outside.
    """
    B, C, h, w = x.shape
    K = offsets.shape[1]
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=x.dtype),
                            torch.arange(w, device=x.device, dtype=x.dtype), indexing="ij")
    px = xs + taps[:, 0].to(x)[:, None, None] + offsets[:, :, 0]  # (B, K, h, w) in token units
    py = ys + taps[:, 1].to(x)[:, None, None] + offsets[:, :, 1]
    # align_corners=True: token i sits at -1 + 2 i / (n - 1); a 1-token axis has only its centre
    gx = 2 * px / max(w - 1, 1) - 1 if w > 1 else px
    gy = 2 * py / max(h - 1, 1) - 1 if h > 1 else py
    grid = torch.stack([gx, gy], -1).view(B, K * h, w, 2)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)  # (B, C, K h, w)
    return out.view(B, C, K, h, w)


class ACDTBlock(nn.Module):
    """One ACDT block (module docstring). ``forward(tokens, organ_dist, grid)``.

    Args:
        dim, num_heads, mlp_ratio, qkv_bias, drop_path: as a ViT block.
        n_organs: length of the organ distribution (the vocabulary size).
        kernel: taps per axis of the deformable sampling (K = kernel²).
        offset_range: bound of each offset, in tokens.
        offset_kernel: the offset network's depthwise kernel.
    """

    def __init__(self, dim: int, num_heads: int, *, n_organs: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, kernel: int = 3, offset_range: float = 2.0, offset_kernel: int = 5) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        if kernel < 1 or offset_range < 0 or n_organs < 1:
            raise ConfigError(f"ACDT needs kernel >= 1, offset_range >= 0 and n_organs >= 1; found {kernel}, "
                              f"{offset_range}, {n_organs}")
        self.num_heads, self.scale = num_heads, (dim // num_heads) ** -0.5
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.context = nn.Linear(n_organs, dim)  # one-hot organ -> anatomical context AC
        self.offsets = OffsetNet(dim, kernel * kernel, kernel=offset_kernel, offset_range=offset_range)
        self.register_buffer("taps", kernel_taps(kernel), persistent=False)
        self.tap_weight = nn.Parameter(torch.full((dim, kernel * kernel), 1.0 / (kernel * kernel)))  # w_k
        self.sample_proj = nn.Conv2d(dim, dim, 1)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.last_offsets: torch.Tensor | None = None

    def deformed(self, xp: torch.Tensor, organ_dist: torch.Tensor) -> torch.Tensor:
        """y_P (B, C, h, w) from x_P (B, C, h, w) and the organ distribution (B, n_organs)."""
        ac = self.context(organ_dist.to(xp.dtype))[:, :, None, None]  # (B, C, 1, 1)
        off = self.offsets(xp + ac)  # (B, K, 2, h, w)
        self.last_offsets = off.detach()
        s = deformable_sample(xp, off, self.taps)  # (B, C, K, h, w)
        return self.sample_proj(torch.einsum("bckhw,ck->bchw", s, self.tap_weight.to(s.dtype)))

    def forward(self, x: torch.Tensor, organ_dist: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        h, w = grid
        P = N - h * w
        if P < 0:
            raise ValueError(f"ACDT block: {N} tokens cannot hold a {h}x{w} grid")
        z = self.norm1(x)
        xp = z[:, P:].transpose(1, 2).reshape(B, C, h, w)
        yp = self.deformed(xp, organ_dist).flatten(2).transpose(1, 2)  # (B, h w, C)
        keys = torch.cat([z[:, :P], yp], 1)  # prefix tokens keep their own features
        H, d = self.num_heads, C // self.num_heads
        q = self.q(z).view(B, N, H, d).transpose(1, 2)
        k, v = self.kv(keys).view(B, N, 2, H, d).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, d)
        x = x + self.drop_path(self.proj(a.transpose(1, 2).reshape(B, N, C)))
        return x + self.drop_path(self.mlp(self.norm2(x)))
