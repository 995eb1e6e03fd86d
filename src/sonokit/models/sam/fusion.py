"""Spatial-frequency fusion (SF-RecSAM, ECCV 2024, Sec. "Spatial-Frequency Feature Fusion") and the public
code's wavelet variant.

**The paper's module** (:class:`SpatialFrequencyFusion`), a parallel branch on a ViT token map x (B, C, H, W):

* frequency features ``f = irfft2(K * rfft2(x))`` — a learnable complex filter ``K`` per channel and
  frequency (C, H, W // 2 + 1), initialised to 1 (the identity) (:func:`frequency_filter`; orthonormal FFTs);
* spatial features ``s = dwconv3x3(x)``, a depthwise 3x3 conv initialised to the identity kernel;
* attention fusion: ``a = sigmoid(conv1x1([s, f]))`` (B, C, H, W) and ``z = a * s + (1 - a) * f``;
* output ``x + proj(z)`` with ``proj`` a zero-initialised 1x1 conv, so the module is the identity at
  initialisation (SAM's function is unchanged until training moves it).

``mode="spatial"`` is the same branch without the frequency filter (``f = x``): the paper's spatial-only
ablation, with the same gate and projection. The paper does not say where in the encoder the module sits;
sonokit places one after each global-attention block (the blocks SAMUS adapts), on the (B, H, W, C) tokens.

**The code's variant** (``hf_input``; ``model/wavelet.py`` of dodooo1/SFRecSAM computes it offline with
``pywt.dwt2(image, "haar")``): a high-frequency image from the Haar detail bands LH + HL + HH, each min-max
normalised, summed, resized to the image size and min-max normalised again (:func:`haar_high_frequency`,
computed here in torch on the fly), which the image encoder feeds through the CNN branch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FUSIONS = ("sf", "spatial", "none")


def frequency_filter(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``irfft2(weight * rfft2(x))`` over the last two axes (orthonormal), in float32.

    Args:
        x: (B, C, H, W) real.
        weight: (C, H, W // 2 + 1, 2) real: the complex filter as (real, imaginary) pairs.
    Returns: (B, C, H, W) in ``x``'s dtype. ``weight[..., 0] = 1, weight[..., 1] = 0`` gives ``x`` back.
    """
    H, W = x.shape[-2:]
    if tuple(weight.shape[:-1]) != (x.shape[1], H, W // 2 + 1):
        raise ValueError(f"frequency filter of shape {tuple(weight.shape)} does not fit a {tuple(x.shape)} map; "
                         f"expected ({x.shape[1]}, {H}, {W // 2 + 1}, 2)")
    if torch.onnx.is_in_onnx_export():  # ONNX has no rFFT op torch's exporter writes: the same map as matmuls
        return frequency_filter_dft(x, weight)
    X = torch.fft.rfft2(x.float(), norm="ortho")  # (B, C, H, W // 2 + 1) complex
    y = torch.fft.irfft2(X * torch.view_as_complex(weight.float().contiguous()), s=(H, W), norm="ortho")
    return y.to(x.dtype)


def dft_matrices(n: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos(2 pi k m / n) / sqrt(n)`` and ``sin(...) / sqrt(n)``, (n, n) float32: an orthonormal DFT's parts."""
    k = torch.arange(n, dtype=torch.float64)
    ang = 2 * torch.pi * torch.outer(k, k) / n
    s = n ** -0.5
    return (ang.cos() * s).float().to(device), (ang.sin() * s).float().to(device)


def frequency_filter_dft(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """:func:`frequency_filter` with real matrix products instead of FFTs (the same map up to float rounding;
    O(H W (H + W)) per channel, cheap at token-grid sizes): what ONNX export traces.

    rFFT over W: ``A = x Cw - i x Sw`` (the first W // 2 + 1 columns); FFT over H: ``X = (Ch - i Sh) A``; the
    filter ``Y = K X``; inverse FFT over H: ``B = (Ch + i Sh) Y``; inverse rFFT over W:
    ``y = Re(B) (c Cw)^T - Im(B) (c Sw)^T`` with ``c = 2`` for the frequencies whose mirror image is not stored
    (``0 < l < W / 2``) and 1 otherwise.
    """
    H, W = x.shape[-2:]
    L = W // 2 + 1
    Ch, Sh = dft_matrices(H, x.device)
    Cw, Sw = (m[:, :L] for m in dft_matrices(W, x.device))  # (W, L)
    c = torch.full((L,), 2.0, device=x.device)
    c[0] = 1.0
    if W % 2 == 0:
        c[-1] = 1.0
    xf = x.float()
    a_re, a_im = xf @ Cw, -(xf @ Sw)  # (B, C, H, L)
    x_re, x_im = Ch @ a_re + Sh @ a_im, Ch @ a_im - Sh @ a_re
    k_re, k_im = weight[..., 0].float(), weight[..., 1].float()  # (C, H, L)
    y_re, y_im = x_re * k_re - x_im * k_im, x_re * k_im + x_im * k_re
    b_re, b_im = Ch.T @ y_re - Sh.T @ y_im, Ch.T @ y_im + Sh.T @ y_re
    return (b_re @ (Cw * c).T - b_im @ (Sw * c).T).to(x.dtype)


class SpatialFrequencyFusion(nn.Module):
    """The paper's spatial-frequency fusion on a (B, H, W, C) token map (see the module docstring).

    Args:
        dim: channels C.
        grid: the token grid H = W it is built for (the filter has one weight per frequency).
        mode: ``"sf"`` (spatial + frequency) or ``"spatial"`` (no frequency filter).

    Parameters are named ``fusion.*`` by the encoder, so ``optim.unfreeze: ['*fusion*']`` selects them.
    """

    def __init__(self, dim: int, grid: int, mode: str = "sf") -> None:
        super().__init__()
        if mode not in ("sf", "spatial"):
            raise ValueError(f"fusion mode must be 'sf' or 'spatial', found {mode!r}")
        self.mode, self.grid = mode, grid
        if mode == "sf":
            w = torch.zeros(dim, grid, grid // 2 + 1, 2)
            w[..., 0] = 1.0  # identity filter
            self.filter = nn.Parameter(w)
        self.spatial = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        with torch.no_grad():
            self.spatial.weight.zero_()
            self.spatial.weight[:, 0, 1, 1] = 1.0  # identity kernel
            self.spatial.bias.zero_()
        self.gate = nn.Conv2d(2 * dim, dim, 1)
        self.proj = nn.Conv2d(dim, dim, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        B, H, W, C = tokens.shape
        if (H, W) != (self.grid, self.grid):
            raise ValueError(f"spatial-frequency fusion built for a {self.grid}x{self.grid} token grid got {H}x{W}")
        x = tokens.permute(0, 3, 1, 2)  # (B, C, H, W)
        s = self.spatial(x)
        f = frequency_filter(x, self.filter) if self.mode == "sf" else x
        a = torch.sigmoid(self.gate(torch.cat([s, f], 1)))  # (B, C, H, W) attention
        z = a * s + (1 - a) * f
        return tokens + self.proj(z).permute(0, 2, 3, 1)  # (B, H, W, C)


def haar_dwt2(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One level of the 2-D Haar transform, as ``pywt.dwt2(x, "haar")`` returns it for even H and W.

    For each 2x2 block ``[[a, b], [c, d]]``: LL = (a + b + c + d) / 2, LH = (a + b - c - d) / 2 (pywt's
    horizontal detail cH), HL = (a - b + c - d) / 2 (vertical, cV), HH = (a - b - c + d) / 2 (diagonal, cD).
    Shapes: (..., H, W) -> four (..., H / 2, W / 2).
    """
    H, W = x.shape[-2:]
    if H % 2 or W % 2:
        raise ValueError(f"haar_dwt2 needs even height and width, found {H}x{W}")
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return (a + b + c + d) / 2, (a + b - c - d) / 2, (a - b + c - d) / 2, (a - b - c + d) / 2


def minmax(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-image min-max normalisation of (B, ..., H, W) to [0, 1] (a constant image gives 0)."""
    flat = x.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    shape = (-1,) + (1,) * (x.ndim - 1)
    return (x - lo.view(shape)) / (hi - lo).clamp_min(eps).view(shape)


def haar_high_frequency(x: torch.Tensor) -> torch.Tensor:
    """The SF-RecSAM code's high-frequency image: (B, 1, H, W) gray -> (B, 1, H, W) in [0, 1].

    ``minmax(resize(minmax(LH) + minmax(HL) + minmax(HH), (H, W)))`` with the Haar bands of
    :func:`haar_dwt2` (bilinear resize, half-pixel centres, as ``cv2.resize``; the code scales to [0, 255]
    where this scales to [0, 1]).
    """
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"haar_high_frequency expects a (B, 1, H, W) gray image, found {tuple(x.shape)}")
    _, lh, hl, hh = haar_dwt2(x.float())
    merged = minmax(lh) + minmax(hl) + minmax(hh)  # (B, 1, H/2, W/2)
    merged = F.interpolate(merged, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return minmax(merged).to(x.dtype)
