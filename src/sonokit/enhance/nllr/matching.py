"""Block matching: group the ``k`` patches most similar to each reference patch of a grid (step 1 of NLLR)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _grid(n: int, stride: int, device) -> torch.Tensor:
    """Positions 0, stride, 2 stride, ... < n, plus n - 1 if missing: (G,) long."""
    g = torch.arange(0, n, stride, device=device)
    return g if int(g[-1]) == n - 1 else torch.cat([g, torch.tensor([n - 1], device=device)])


def _window_sums(cs: torch.Tensor, p: int, stride: int, *, dim: int) -> torch.Tensor:
    """Sums of ``p`` consecutive values starting at the positions of :func:`_grid` along ``dim``, from the
    running sums ``cs`` (``cs[j]`` = sum of the first j + 1 values): ``cs[r + p - 1] - cs[r - 1]``.

    Strided slices only (no gather): (..., n, ...) -> (..., G, ...)."""
    n = cs.shape[dim]
    npos = n - p + 1  # window positions
    g = len(range(0, npos, stride))  # regular grid 0, stride, ... (+ the last position when missing)
    hi = cs.narrow(dim, p - 1, (g - 1) * stride + 1)[(slice(None),) * dim + (slice(None, None, stride),)]
    out = hi.clone()  # (..., g, ...)
    if g > 1:  # positions r = stride, 2 stride, ...: subtract cs[r - 1]
        lo = cs.narrow(dim, stride - 1, (g - 2) * stride + 1)[(slice(None),) * dim + (slice(None, None, stride),)]
        out.narrow(dim, 1, g - 1).sub_(lo)
    if (g - 1) * stride != npos - 1:  # the last position, npos - 1, appended by _grid
        last = cs.narrow(dim, n - 1, 1) - (cs.narrow(dim, npos - 2, 1) if npos > 1 else 0)
        out = torch.cat([out, last], dim)
    return out


def block_match(y: torch.Tensor, *, patch: int = 8, stride: int = 4, search: int = 10, k: int = 16,
                chunk: int = 21) -> tuple[torch.Tensor, torch.Tensor]:
    """Group similar patches around a grid of reference patches.

    Args:
        y: (H, W) image.
        patch: patch side ``p``, pixels. stride: reference grid step. search: half-width of the search
            window (displacements in ``[-search, search]²``). k: patches per group.
        chunk: displacements processed at once (memory: about ``2 · chunk · H · W`` floats).

    Returns:
        ``refs`` (N, 2) top-left (row, col) of the reference patches and ``groups`` (N, k, 2) top-left
        corners of the ``k`` most similar patches of each group: the reference itself first, then the
        others by increasing distance (deterministic on CPU; exact ties may be broken either way).
    """
    H, W = y.shape
    p, R, dev = patch, search, y.device
    Hp, Wp = H - p + 1, W - p + 1  # number of patch positions per axis
    ry, rx = _grid(Hp, stride, dev), _grid(Wp, stride, dev)  # (Gy,), (Gx,)
    D = 2 * R + 1
    yp = F.pad(y[None, None], (R, R, R, R))[0, 0]  # (H + 2R, W + 2R), zeros never reach a valid candidate
    shifted = yp.unfold(0, H, 1).unfold(1, W, 1).reshape(D * D, H, W)  # shifted[a D + b] = y moved by (a - R, b - R)
    dist = torch.empty(D * D, ry.numel(), rx.numel(), device=dev, dtype=torch.float32)
    for s0 in range(0, D * D, chunk):
        d2 = (shifted[s0:s0 + chunk] - y).square_()  # (c, H, W) squared differences
        # p x p box sums at the reference corners from running sums (along x on all rows, then along y)
        bx = _window_sums(d2.cumsum(2), p, stride, dim=2)  # (c, H, Gx); ~1e-7 relative error in float32
        dist[s0:s0 + chunk] = _window_sums(bx.cumsum(1), p, stride, dim=1)  # (c, Gy, Gx)
    off = torch.arange(-R, R + 1, device=dev)  # (D,)
    vy = ((ry[None] + off[:, None]) >= 0) & ((ry[None] + off[:, None]) < Hp)  # (D, Gy) candidate row inside
    vx = ((rx[None] + off[:, None]) >= 0) & ((rx[None] + off[:, None]) < Wp)  # (D, Gx)
    valid = (vy[:, None, :, None] & vx[None, :, None, :]).reshape(D * D, ry.numel(), rx.numel())
    dist = dist.masked_fill_(~valid, math.inf)
    dist[R * D + R] = -1.0  # the reference itself (displacement 0) always leads its group
    dist = dist.permute(1, 2, 0).reshape(ry.numel() * rx.numel(), D * D)  # (N, D*D)
    order = torch.topk(dist, k, dim=1, largest=False, sorted=True).indices  # (N, k) displacement indices
    refs = torch.stack(torch.meshgrid(ry, rx, indexing="ij"), -1).reshape(-1, 2)  # (N, 2)
    disp = torch.stack([off[order // D], off[order % D]], -1)  # (N, k, 2)
    return refs, refs[:, None] + disp
