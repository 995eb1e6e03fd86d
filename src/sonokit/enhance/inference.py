"""Apply a trained enhancer to images of any size: whole image when it fits in one tile, else tiled.

Sizes: an image no larger than ``tile`` on both sides (including one smaller than a tile, e.g. 40x50 with
``tile=256``) is processed whole; :class:`~sonokit.enhance.models.Enhancer` pads it to the network's size
multiple and crops back. Larger images go through :func:`sonokit.tiling.tiled_apply` with ``overlap``
pixels between tiles (crop-and-stitch): identical to whole-image inference wherever the network's
receptive-field radius is at most ``overlap // 2`` (exactly so for DnCNN, 10 or 20 3x3 layers, radius 10 or
20 px; SCUNet's and Restormer's receptive fields are image-wide, so there tiles differ slightly near seams).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..tiling import tiled_apply
from .models import Enhancer


def load_enhancer(path: str | Path, *, device: str = "cpu", trust: bool = False, backend: str = "torch",
                  threads: int | None = None, log=None) -> tuple[Enhancer, dict]:
    """The network of a ``sonokit train enhance`` checkpoint (read safely), in eval mode on ``device``, and
    its hparams. ``backend="onnx"``: its graph in ONNX Runtime instead (:class:`~.onnx.OnnxEnhancer`, CPU),
    exported beside the checkpoint and checked against torch on first use (:mod:`sonokit.inference.backend`)."""
    from ..errors import ConfigError
    from ..inference.backend import BACKENDS, default_threads, onnx_model
    from ..inference.checkpoint import build_model, read_task_checkpoint, torch_device
    from .models import ENHANCERS

    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}; found '{backend}'")
    ckpt = read_task_checkpoint(path, expect=("enhance",), trust=trust)
    hp = ckpt["hyper_parameters"]
    if backend == "onnx":
        from .onnx import OnnxEnhancer

        if torch_device(device).type != "cpu":
            raise ConfigError(f"--backend onnx runs on the CPU; found --device {device}")
        net = build_model(ckpt, path, ENHANCERS)
        sess = onnx_model(path, threads=threads or default_threads(), build_torch=lambda: net,
                          image_size=max(64, net.multiple), task="enhance", log=log, model_name=str(hp.get("model")))
        return OnnxEnhancer(sess, multiple=net.multiple, name=net.name), hp
    net = build_model(ckpt, path, ENHANCERS)
    return net.to(torch_device(device)), hp


@torch.no_grad()
def enhance_image(net: Enhancer, image: np.ndarray | torch.Tensor, *, tile: int = 256, overlap: int = 64,
                  device: str | torch.device | None = None) -> np.ndarray:
    """Enhance one (H, W) (or (1, H, W)) image in [0, 1]; returns float32 (H, W) clipped to [0, 1].

    Raises ``ValueError`` for NaN/Inf pixels, a non-2-D image, or a ``tile`` that is not a multiple of the
    network's size multiple (``net.multiple``: 64 for SCUNet, 8 for Restormer, 1 for DnCNN), or, for an image
    larger than one tile, an ``overlap`` outside [0, tile).
    """
    x = torch.as_tensor(np.asarray(image, dtype=np.float32) if not isinstance(image, torch.Tensor) else image)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D gray image (H, W), found shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"image has {int((~torch.isfinite(x)).sum())} NaN/Inf pixel(s); expected finite values in [0, 1]")
    m = int(getattr(net, "multiple", 1))
    if tile % m:
        raise ValueError(f"tile ({tile}) must be a multiple of {m} for '{getattr(net, 'name', 'this model')}'; "
                         f"try --tile {max(m, (tile // m) * m)}")
    dev = torch.device(device) if device is not None else (
        net.device if hasattr(net, "device") else next(net.parameters()).device)  # OnnxEnhancer: .device
    x = x.float().to(dev)[None, None]  # (1, 1, H, W)
    H, W = x.shape[-2:]
    if H <= tile and W <= tile:
        y = net(x)
    else:
        if not 0 <= overlap < tile:
            raise ValueError(f"overlap must be in [0, tile) for an image larger than one tile; found overlap={overlap}, "
                             f"tile={tile}, image {H}x{W}")
        ov = overlap if overlap == 0 or overlap >= m else m  # tiles stay on the network's grid
        y = tiled_apply(net, x, tile=tile, overlap=ov, multiple=m)
    return y[0, 0].float().clamp_(0, 1).cpu().numpy()  # in place: no second full-size copy


def at_scale(fn, image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Run ``fn`` ((h, w) -> (h, w) float image) at a pixel scale where the longer side is at most ``max_side``:
    area-downscale, ``fn``, bilinear resize back to the input's (H, W), clip to [0, 1]. ``max_side=None`` or
    an image already that small: ``fn(image)`` unchanged. Used to run an enhancer at the scale it was trained
    at (its checkpoint's ``image.max_side``), e.g. by ``sonokit enhance --training-scale``."""
    from ..data.pairs import downscale

    image = np.asarray(image, dtype=np.float32)
    H, W = image.shape
    if max_side is None or max(H, W) <= max_side:
        return np.asarray(fn(image), dtype=np.float32)
    y = np.asarray(fn(downscale(image, max_side)), dtype=np.float32)
    t = torch.from_numpy(np.ascontiguousarray(y))[None, None]
    return torch.nn.functional.interpolate(t, size=(H, W), mode="bilinear", align_corners=False)[0, 0].clamp(0, 1).numpy()

