"""The pieces of A-ViT's pretraining objective (ICLR 2026, Sec. 3.3), each testable alone.

* :func:`random_patch_mask` — a fixed number of random patches per image (ratio ``mask_ratio``);
* :class:`PixelDecoder` — the light decoder: patch tokens -> the patch's pixels (two linear layers; its last
  layer is where the adaptive weight's gradients are taken);
* :func:`mim_loss` — ``L_MIM = 1/|Ω| Σ_{i ∈ Ω} ||x_i - x̂_i||²`` (sum over a patch's pixels, mean over the masked
  patches of the batch);
* :class:`PatchDiscriminator` and :func:`generator_loss` / :func:`discriminator_loss` — ``L_adv^(G) =
  -E log D(x̂)`` on reconstructed patches; the discriminator's own loss ``-E log D(x) - E log(1 - D(x̂))``;
* :func:`adaptive_weight` — ``λ = ||∇_W L_MIM|| / (||∇_W L_adv|| + ε)`` at the decoder's last layer ``W``,
  detached and clamped (VQGAN's rule, the paper's Eq.);
* :func:`patchify` / :func:`multi_crop` — patches of an image, and DINO's global / local crops (batched
  ``roi_align``, one seeded generator).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, (H/p)(W/p), C p p), row-major patches."""
    B, C, H, W = x.shape
    return x.view(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, (H // p) * (W // p), C * p * p)


def random_patch_mask(batch: int, n: int, ratio: float, generator: torch.Generator | None = None,
                      device=None) -> torch.Tensor:
    """(B, n) bool, exactly ``round(ratio * n)`` (at least 1, at most n - 1) True per row, at random."""
    k = min(n - 1, max(1, round(ratio * n)))
    noise = torch.rand(batch, n, generator=generator)
    idx = noise.argsort(1)[:, :k]
    mask = torch.zeros(batch, n, dtype=torch.bool)
    mask.scatter_(1, idx, True)
    return mask.to(device)


class PixelDecoder(nn.Module):
    """Patch tokens (B, N, D) -> pixels (B, N, C p p): Linear -> GELU -> Linear (``last``)."""

    def __init__(self, dim: int, patch: int, in_chans: int = 1, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or dim
        self.fc = nn.Linear(dim, hidden)
        self.last = nn.Linear(hidden, in_chans * patch * patch)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.last(F.gelu(self.fc(tokens)))


def mim_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared error summed over each masked patch's pixels, averaged over the masked patches.
    pred, target (B, N, P); mask (B, N) bool."""
    per_patch = (pred - target).square().sum(-1)  # (B, N)
    return per_patch[mask].mean()


class PatchDiscriminator(nn.Module):
    """A patch (B, C, p, p) -> one real/fake logit: three 3x3 convs (the last two at stride 2), LeakyReLU,
    global average pool, linear."""

    def __init__(self, in_chans: int = 1, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.LeakyReLU(0.2))
        self.head = nn.Linear(2 * width, 1)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(patches).mean((2, 3))).squeeze(-1)


def generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """``-E log D(x̂)`` with D = sigmoid(logit): softplus(-logit)."""
    return F.softplus(-d_fake).mean()


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """``-E log D(x) - E log(1 - D(x̂))``."""
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def adaptive_weight(l_mim: torch.Tensor, l_adv: torch.Tensor, layer: torch.Tensor, *, eps: float = 1e-4,
                    max_value: float = 1e4) -> torch.Tensor:
    """``||∇_layer L_MIM|| / (||∇_layer L_adv|| + eps)``, detached, clamped to [0, max_value]."""
    g_mim = torch.autograd.grad(l_mim, layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(l_adv, layer, retain_graph=True)[0]
    return (g_mim.norm() / (g_adv.norm() + eps)).clamp(0.0, max_value).detach()


def random_boxes(batch: int, H: int, W: int, scale: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """(B, 4) square-ish boxes ``x0, y0, x1, y1`` covering ``scale`` of the image area (aspect 3/4..4/3)."""
    area = torch.empty(batch).uniform_(scale[0], scale[1], generator=generator) * H * W
    logr = torch.empty(batch).uniform_(float(torch.log(torch.tensor(3 / 4))), float(torch.log(torch.tensor(4 / 3))),
                                       generator=generator)
    w = (area * logr.exp()).sqrt().clamp(2, W)
    h = (area / logr.exp()).sqrt().clamp(2, H)
    x0 = torch.rand(batch, generator=generator) * (W - w)
    y0 = torch.rand(batch, generator=generator) * (H - h)
    return torch.stack([x0, y0, x0 + w, y0 + h], 1)


def multi_crop(x: torch.Tensor, *, n_global: int, global_size: int, global_scale: tuple[float, float],
               n_local: int, local_size: int, local_scale: tuple[float, float],
               generator: torch.Generator) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """DINO's views of a batch (B, C, H, W): ``n_global`` crops at ``global_size`` and ``n_local`` at
    ``local_size`` (bilinear ``roi_align``), each randomly mirrored; returns (globals, locals)."""
    from torchvision.ops import roi_align

    B, _, H, W = x.shape

    def crops(n, size, scale):
        out = []
        for _ in range(n):
            boxes = random_boxes(B, H, W, scale, generator).to(x)
            rois = torch.cat([torch.arange(B, dtype=x.dtype, device=x.device)[:, None], boxes], 1)
            v = roi_align(x, rois, (size, size), spatial_scale=1.0, sampling_ratio=2, aligned=True)
            flip = (torch.rand(B, generator=generator) < 0.5).to(x.device)
            out.append(torch.where(flip[:, None, None, None], v.flip(-1), v))
        return out

    return crops(n_global, global_size, global_scale), crops(n_local, local_size, local_scale)
