"""SAM's ViT image encoder (Kirillov et al. 2023, ``segment_anything``), adapted to ultrasound as SAMUS does.

The encoder keeps the official parameter names and shapes (``patch_embed.proj``, ``pos_embed`` (1, 64, 64, C),
``blocks.i.*``, ``neck.*``) so a ``sam_vit_*.pth`` file loads into it (:mod:`.checkpoint`); what sonokit adds
is named ``*adapter*``, ``cnn_branch.*`` or ``fusion.*``.

**Input adaptation** (SAMUS, Lin et al. 2023, xianlin7/SAMUS): a gray (B, 1, S, S) image in [0, 1] is scaled
to [0, 255], repeated to 3 channels and normalised with SAM's pixel mean / std. With ``patch_stride=8`` it is
resized to (S + 8) x (S + 8) and SAM's 16x16 patch convolution runs at stride 8: S = 256 gives 32 x 32 tokens
(a quarter of SAM's 64 x 64, at a sixteenth of its cost). ``patch_stride=16`` is plain SAM at ``img_size``
(1024 gives SAM exactly). SAM's 64 x 64 absolute position embedding is reduced to the token grid:

* ``pos_adapt="conv"`` — a learned down-sampling (``pos_adapter``), one step per halving: 2x2 average pooling
  plus a residual [3x3 conv -> LayerNorm2d -> GELU -> 1x1 conv] whose last conv is zero-initialised. SAMUS
  uses max-pooling -> conv -> LayerNorm -> GELU per halving, which discards SAM's embedding at
  initialisation; the residual form starts at the interpolated embedding. Needs 64 / grid to be a power of 2.
* ``pos_adapt="interpolate"`` — bilinear (antialiased) resampling, no parameters; any grid.

The relative-position tables of the global-attention blocks have 2 * grid - 1 entries (63 for 32 tokens);
:mod:`.checkpoint` interpolates SAM's 127 when loading. Windowed blocks keep SAM's 14 x 14 windows (27 entries;
a 32 x 32 grid is padded to 42 x 42 = 3 x 3 windows, as SAMUS).

Valid sizes: ``img_size`` a multiple of ``patch_stride`` with a grid ``img_size / patch_stride`` of at least
4 tokens (and at most 64 with ``pos_adapt="conv"``, where 64 / grid must be a power of 2: with stride 8,
img_size 32, 64, 128, 256 or 512). Output: the neck's (B, 256, grid, grid) image embedding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.image_encoder import PatchEmbed
from torch import nn

from ...errors import ConfigError
from .adapters import CNN_SCALE, AdaptedBlock, Adapter, CNNBranch
from .fusion import FUSIONS, SpatialFrequencyFusion, haar_high_frequency


@dataclass(frozen=True)
class SamVariant:
    embed_dim: int
    depth: int
    num_heads: int
    global_attn: tuple[int, ...]


#: The official sizes (``segment_anything.build_sam``) and a tiny one for CPU presets and tests.
SAM_VARIANTS: dict[str, SamVariant] = {
    "vit_b": SamVariant(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamVariant(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamVariant(1280, 32, 16, (7, 15, 23, 31)),
    "vit_tiny": SamVariant(192, 12, 3, (2, 5, 8, 11)),
}
SAM_GRID = 64  # SAM's position-embedding grid: 1024 px / 16
PATCH = 16  # SAM's patch convolution kernel
WINDOW = 14  # SAM's attention window
OUT_CHANS = 256  # the neck's output = the prompt embedding dimension
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
POS_ADAPT = ("conv", "interpolate")
ADAPTERS = ("every", "global", "none")
MIN_GRID = 4


def check_choice(value: object, choices: tuple, what: str) -> str:
    if value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(map(str, choices))}; found {value!r}")
    return str(value)


def token_grid(img_size: object, patch_stride: object, pos_adapt: str = "interpolate") -> int:
    """The token grid ``img_size / patch_stride``, or a :class:`ConfigError` saying which sizes are valid."""
    if patch_stride not in (8, 16) or isinstance(patch_stride, bool):
        raise ConfigError(f"patch_stride must be 8 (SAMUS: 16x16 patches at stride 8) or 16 (plain SAM); "
                          f"found {patch_stride!r}")
    s = int(patch_stride)
    if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < MIN_GRID * s:
        raise ConfigError(f"img_size must be an integer multiple of patch_stride {s} of at least {MIN_GRID * s} "
                          f"(a {MIN_GRID}x{MIN_GRID} token grid); found {img_size!r}")
    if img_size % s:
        lo, hi = img_size // s * s, (img_size // s + 1) * s
        raise ConfigError(f"img_size {img_size} is not a multiple of patch_stride {s}; use {lo} or {hi}")
    grid = img_size // s
    if pos_adapt == "conv" and (grid > SAM_GRID or SAM_GRID % grid or SAM_GRID // grid & (SAM_GRID // grid - 1)):
        ok = ", ".join(str(SAM_GRID // 2 ** k * s) for k in range(5) if SAM_GRID // 2 ** k >= MIN_GRID)
        raise ConfigError(f"pos_adapt 'conv' halves SAM's {SAM_GRID}x{SAM_GRID} position grid, so the token grid "
                          f"img_size / patch_stride = {grid} must be {SAM_GRID} / 2^k; with patch_stride {s} use "
                          f"img_size {ok}, or pos_adapt: interpolate")
    return grid


def sam_neck(dim: int) -> nn.Sequential:
    """SAM's neck: (B, dim, g, g) -> the (B, 256, g, g) image embedding (1x1 conv -> LayerNorm2d -> 3x3 conv ->
    LayerNorm2d, no biases; the official parameter names ``neck.0`` ... ``neck.3``)."""
    return nn.Sequential(nn.Conv2d(dim, OUT_CHANS, 1, bias=False), LayerNorm2d(OUT_CHANS),
                         nn.Conv2d(OUT_CHANS, OUT_CHANS, 3, padding=1, bias=False), LayerNorm2d(OUT_CHANS))


class PosEmbedDown(nn.Module):
    """SAM's (1, 64, 64, C) position embedding -> (1, grid, grid, C), ``halvings`` learned steps (module docstring)."""

    def __init__(self, dim: int, halvings: int) -> None:
        super().__init__()
        self.steps = nn.ModuleList()
        for _ in range(halvings):
            last = nn.Conv2d(dim, dim, 1)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.steps.append(nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, bias=False), LayerNorm2d(dim),
                                            nn.GELU(), last))

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        x = pos.permute(0, 3, 1, 2)  # (1, C, 64, 64)
        for step in self.steps:
            x = F.avg_pool2d(x, 2)
            x = x + step(x)
        return x.permute(0, 2, 3, 1)  # (1, grid, grid, C)


class SamImageEncoder(nn.Module):
    """SAM's image encoder for (B, 1, img_size, img_size) gray images in [0, 1] -> (B, 256, grid, grid).

    Args:
        variant: ``vit_b``, ``vit_l``, ``vit_h`` (official) or ``vit_tiny`` (192 wide, 12 blocks, 3 heads).
        img_size, patch_stride, pos_adapt: the input adaptation (module docstring).
        adapters: bottleneck MLP adapters in ``"every"`` block (default), only the ``"global"`` ones, or
            ``"none"``; with adapters an input adapter also follows the patch embedding (SAMUS). All are
            zero-initialised (the encoder computes SAM's function until they train).
        adapter_ratio: the adapters' bottleneck width / embedding width.
        cnn_branch: SAMUS's CNN branch with cross-attention adapters in the global blocks (``0.5 * cnn`` is added
            to the tokens after the last block).
        hf_input: also feed the Haar high-frequency image through the CNN branch (the SF-RecSAM code's input);
            needs ``cnn_branch``.
        fusion: ``"sf"`` spatial-frequency fusion after each global block (the paper), ``"spatial"`` (the
            ablation without the frequency filter), or ``"none"``.
    """

    def __init__(self, variant: str = "vit_b", *, img_size: int = 256, patch_stride: int = 8, pos_adapt: str = "conv",
                 adapters: str = "every", adapter_ratio: float = 0.25, cnn_branch: bool = False,
                 hf_input: bool = False, fusion: str = "sf") -> None:
        super().__init__()
        check_choice(variant, tuple(SAM_VARIANTS), "sam_variant")
        check_choice(pos_adapt, POS_ADAPT, "pos_adapt")
        check_choice(adapters, ADAPTERS, "adapters")
        check_choice(fusion, FUSIONS, "fusion")
        if not 0 < float(adapter_ratio) <= 4:
            raise ConfigError(f"adapter_ratio must be in (0, 4], found {adapter_ratio!r}")
        if hf_input and not cnn_branch:
            raise ConfigError("hf_input feeds the Haar high-frequency image through the CNN branch; set "
                              "cnn_branch: true as well (or hf_input: false)")
        v = SAM_VARIANTS[variant]
        grid = token_grid(img_size, patch_stride, pos_adapt)
        self.variant, self.img_size, self.patch_stride, self.grid = variant, img_size, int(patch_stride), grid
        self.hf_input = bool(hf_input)
        C = v.embed_dim
        self.patch_embed = PatchEmbed(kernel_size=(PATCH, PATCH), stride=(patch_stride, patch_stride), in_chans=3,
                                      embed_dim=C)
        # SAM starts it at zero (its weights always come from a checkpoint); without one, a zero embedding that stays
        # frozen would leave the model without position information, so it starts as timm's ViTs do
        self.pos_embed = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, SAM_GRID, SAM_GRID, C), std=0.02))
        halvings = int(math.log2(SAM_GRID // grid)) if pos_adapt == "conv" else 0
        self.pos_adapter = PosEmbedDown(C, halvings) if halvings else None
        self.input_adapter = Adapter(C, adapter_ratio, skip=True) if adapters != "none" else None
        self.global_blocks = tuple(v.global_attn)
        self.blocks = nn.ModuleList(
            AdaptedBlock(dim=C, num_heads=v.num_heads, window_size=0 if i in v.global_attn else WINDOW,
                         input_size=(grid, grid), adapter=adapters == "every" or (adapters == "global"
                                                                                 and i in v.global_attn),
                         adapter_ratio=adapter_ratio, cross_adapter=bool(cnn_branch) and i in v.global_attn)
            for i in range(v.depth))
        self.neck = sam_neck(C)
        self.cnn_branch = CNNBranch(C, self.patch_stride) if cnn_branch else None
        self.fusion = (nn.ModuleList(SpatialFrequencyFusion(C, grid, fusion) for _ in v.global_attn)
                       if fusion != "none" else None)
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def embed_dim(self) -> int:
        return int(self.pos_embed.shape[-1])

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] -> (B, 3, S, S) normalised as SAM's inputs (a 3-channel input is taken as RGB)."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x * 255.0 - self.pixel_mean) / self.pixel_std

    def position_embedding(self) -> torch.Tensor:
        """SAM's position embedding on the token grid: (1, grid, grid, C)."""
        if self.pos_adapter is not None:
            return self.pos_adapter(self.pos_embed)
        if self.grid == SAM_GRID:
            return self.pos_embed
        pos = F.interpolate(self.pos_embed.permute(0, 3, 1, 2), size=(self.grid, self.grid), mode="bilinear",
                            align_corners=False, antialias=True)
        return pos.permute(0, 2, 3, 1)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised (B, 3, S, S) -> patch tokens (B, grid, grid, C) (SAMUS: resize to S + 8, stride 8)."""
        if self.patch_stride != PATCH:
            pad = PATCH - self.patch_stride
            x = F.interpolate(x, size=(self.img_size + pad, self.img_size + pad), mode="bilinear", align_corners=False)
        t = self.patch_embed(x)  # (B, grid, grid, C)
        if self.input_adapter is not None:
            t = self.input_adapter(t)
        return t + self.position_embedding()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        if (H, W) != (self.img_size, self.img_size):
            raise ValueError(f"SAM image encoder built for {self.img_size}x{self.img_size} inputs got {H}x{W}")
        xn = self.preprocess(x)  # (B, 3, S, S)
        tok = self.tokens(xn)  # (B, grid, grid, C)
        cnn = None
        if self.cnn_branch is not None:
            hf = self.preprocess(haar_high_frequency(x[:, :1])) if self.hf_input else None
            cnn = self.cnn_branch(xn, hf)  # (B, grid, grid, C)
        j = 0
        for i, blk in enumerate(self.blocks):
            tok, cnn = blk(tok, cnn)
            if self.fusion is not None and i in self.global_blocks:
                tok = self.fusion[j](tok)
                j += 1
        if cnn is not None:
            tok = tok + CNN_SCALE * cnn
        return self.neck(tok.permute(0, 3, 1, 2))  # (B, 256, grid, grid)
