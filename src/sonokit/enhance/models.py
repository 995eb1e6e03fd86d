"""Enhancement networks (image -> image, (B, 1, H, W) in [0, 1]), registered by name.

The networks are DeepInverse's implementations (``deepinv.models``), wrapped so that sonokit never downloads
weights (``pretrained=None``; a local weights file can be given with ``weights=``), works on one gray channel,
and reports the size multiple a tile must have:

* ``scunet``: Swin-Conv U-Net (Zhang et al. 2023), the published configuration (``config=(4,)*7, dim=64``),
  the network of Khan et al. 2026; ``scunet_small``: ``config=(2,)*7`` (half the blocks; ``dim`` stays 64
  because SCUNet's attention heads are 32 channels wide on half of ``dim``) for CPUs;
* ``dncnn``: DnCNN (Zhang et al. 2017), 20 layers, 64 features; ``dncnn_small``: 10 layers, 32 features;
* ``restormer``: Restormer (Zamir et al. 2022), deepinv's default sizes; ``restormer_small``: dim 24;
* ``drunet``: DRUNet (Zhang et al. 2021), the published configuration (channels 64/128/256/512, 4 residual
  blocks per scale); ``drunet_small``: channels 16/32/64/128, 2 blocks per scale (0.06 s for a 256² frame
  on 2 CPU cores). DRUNet takes the noise level as an extra input channel; sonokit runs it **blind** by
  default (that channel held at 0, so the network must infer the level, like DnCNN-B). ``noise_level=s``
  feeds the constant level ``s`` (in [0, 1] pixel units) instead, the published non-blind use — for
  published DRUNet gray weights given with ``weights=``.

Inputs whose size is not a multiple of ``multiple`` are reflect-padded and cropped back by
:class:`Enhancer`; large images go through :func:`sonokit.tiling.tiled_apply`.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from ..registry import Registry

ENHANCERS: Registry[nn.Module] = Registry("enhancement model")


def pad_to_multiple(x: torch.Tensor, m: int) -> torch.Tensor:
    """Pad (B, C, H, W) on the bottom and right to multiples of ``m``: reflect, or replicate when the padding is
    not smaller than the image (reflect cannot)."""
    H, W = x.shape[-2:]
    ph, pw = (-H) % m, (-W) % m
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < H and pw < W else "replicate")


class Enhancer(nn.Module):
    """Wrap an image-to-image network: pad to ``multiple``, run, crop back, clamp nothing.

    Attributes: ``multiple`` (int) — the spatial multiple the wrapped network needs.
    """

    def __init__(self, net: nn.Module, *, multiple: int, name: str) -> None:
        super().__init__()
        self.net, self.multiple, self.name = net, int(multiple), name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"{self.name} expects (B, 1, H, W) images, found shape {tuple(x.shape)}")
        H, W = x.shape[-2:]
        return self.net(pad_to_multiple(x, self.multiple))[..., :H, :W]

    def onnx_module(self) -> dict:
        """What :func:`sonokit.inference.onnx.export_onnx` exports: the inner network (dynamic height and width;
        the caller pads to ``multiple``, :class:`sonokit.enhance.onnx.OnnxEnhancer`)."""
        return {"module": self.net, "dynamic_size": True,
                "note": f"input height and width must be multiples of {self.multiple} (pad, run, crop)"}


def _load(net: nn.Module, weights: str | Path | None, name: str) -> nn.Module:
    """``weights`` (safetensors, or a torch file holding the state dict or ``{"params"|"state_dict": ...}``)
    read with :func:`sonokit.serialization.load_weights` (no ``trust``: a file that would run code is refused)."""
    if weights is None:
        return net
    from ..serialization import load_weights

    p = Path(weights)
    sd, _ = load_weights(p, trustable=False)  # a model factory: no trust
    inner = next((sd[k] for k in ("params", "state_dict") if isinstance(sd.get(k), dict)), None)
    sd = sd if inner is None else inner
    try:
        net.load_state_dict(sd)
    except RuntimeError as e:
        raise CheckpointError(f"weights '{p}' do not fit '{name}': {str(e)[:300]}") from None
    return net


def _scunet(name: str, config: tuple[int, ...], dim: int):
    def factory(*, weights: str | None = None, drop_path_rate: float = 0.0) -> Enhancer:
        from deepinv.models import SCUNet

        net = SCUNet(in_nc=1, config=list(config), dim=dim, drop_path_rate=drop_path_rate, pretrained=None)
        return Enhancer(_load(net, weights, name), multiple=64, name=name)  # 3 downsamplings x window 8

    factory.__name__ = name
    return factory


def _dncnn(name: str, depth: int, nf: int):
    def factory(*, weights: str | None = None) -> Enhancer:
        from deepinv.models import DnCNN

        net = DnCNN(in_channels=1, out_channels=1, depth=depth, nf=nf, pretrained=None)
        return Enhancer(_load(net, weights, name), multiple=1, name=name)

    factory.__name__ = name
    return factory


def _restormer(name: str, dim: int, blocks: tuple[int, ...], refine: int):
    def factory(*, weights: str | None = None) -> Enhancer:
        from deepinv.models import Restormer

        net = Restormer(in_channels=1, out_channels=1, dim=dim, num_blocks=list(blocks), num_refinement_blocks=refine,
                        pretrained=None)
        return Enhancer(_load(net, weights, name), multiple=8, name=name)  # 3 downsamplings

    factory.__name__ = name
    return factory


class _DRUNet(nn.Module):
    """deepinv's DRUNet with its noise-level channel fixed: 0 (blind) or a constant level."""

    def __init__(self, net: nn.Module, noise_level: float | None) -> None:
        super().__init__()
        self.net, self.noise_level = net, 0.0 if noise_level is None else float(noise_level)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, self.noise_level)


def _drunet(name: str, nc: tuple[int, ...], nb: int):
    def factory(*, weights: str | None = None, noise_level: float | None = None) -> Enhancer:
        from deepinv.models import DRUNet

        if noise_level is not None and not 0.0 <= float(noise_level) <= 1.0:
            raise ValueError(f"{name}: noise_level must be in [0, 1] (pixel units of a [0, 1] image), found {noise_level}")
        net = DRUNet(in_channels=1, out_channels=1, nc=list(nc), nb=nb, pretrained=None)
        return Enhancer(_DRUNet(_load(net, weights, name), noise_level), multiple=8, name=name)  # 3 downsamplings

    factory.__name__ = name
    return factory


ENHANCERS.register("scunet", init_only=("weights",),
                  help="SCUNet (Zhang et al. 2023), published size: Khan et al.'s enhancer.")(_scunet("scunet", (4, 4, 4, 4, 4, 4, 4), 64))
ENHANCERS.register("scunet_small", init_only=("weights",),
                  help='SCUNet with half the blocks, for CPUs.')(_scunet("scunet_small", (2, 2, 2, 2, 2, 2, 2), 64))
ENHANCERS.register("dncnn", init_only=("weights",),
                  help='DnCNN (Zhang et al. 2017): 20 layers, 64 features.')(_dncnn("dncnn", 20, 64))
ENHANCERS.register("dncnn_small", init_only=("weights",),
                  help='DnCNN with 10 layers, 32 features (CPU).')(_dncnn("dncnn_small", 10, 32))
ENHANCERS.register("restormer", init_only=("weights",),
                  help="Restormer (Zamir et al. 2022), deepinv's default size.")(_restormer("restormer", 48, (4, 6, 6, 8), 4))
ENHANCERS.register("restormer_small", init_only=("weights",),
                  help='Restormer with dim 24 (CPU).')(_restormer("restormer_small", 24, (1, 2, 2, 2), 1))
ENHANCERS.register("drunet", init_only=("weights",),
                  help='DRUNet (Zhang et al. 2021), published size; blind by default.')(_drunet("drunet", (64, 128, 256, 512), 4))
ENHANCERS.register("drunet_small", init_only=("weights",),
                  help='DRUNet, channels 16-128, 2 blocks per scale (CPU); blind.')(_drunet("drunet_small", (16, 32, 64, 128), 2))


def create_enhancer(name: str, **kw) -> Enhancer:
    return ENHANCERS.create(name, **kw)


def list_enhancers(pattern: str = "*") -> list[str]:
    return ENHANCERS.list(pattern)
