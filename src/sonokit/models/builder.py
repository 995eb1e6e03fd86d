"""The model registry and what every model factory shares: building the encoder (weights, checkpoint, extra
arguments) and the neck, ``create_model`` and ``encoder_spec``.

A model factory's keyword arguments are its config (``sonokit.registry``); ``encoder_weights`` and
``encoder_checkpoint`` only initialise weights (``init_only``), so a trained model is rebuilt without them.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry, split_spec
from .encoders import ENCODERS, load_encoder_checkpoint
from .necks import NECKS

MODELS: Registry[nn.Module] = Registry("model")

INIT_ONLY = ("encoder_weights", "encoder_checkpoint")
NECK_CHOICES = ("auto", "none")  # plus the registered necks
_SET_BY_MODEL = {"in_chans": "in_chans", "weights": "encoder_weights", "img_size": "img_size"}


def build_encoder(encoder: str, *, in_chans: int = 1, img_size: int | None = None, weights: str | None = None,
                  checkpoint: str | None = None, encoder_kwargs: dict | None = None) -> nn.Module:
    """The registered encoder ``encoder`` with the model's arguments, then ``checkpoint`` loaded into it.

    ``img_size`` is passed only when the encoder's factory takes it (and is not None); ``encoder_kwargs`` are
    further encoder arguments, checked against its signature (``encoder_kwargs.out_indices`` ...)."""
    ENCODERS.get(encoder)  # unknown name: "did you mean" before anything is built
    extra = dict(encoder_kwargs or {})
    for key, model_key in _SET_BY_MODEL.items():
        if key in extra:
            raise ConfigError(f"encoder_kwargs.{key} is set by the model's own '{model_key}'; move it there")
    ENCODERS.check_kwargs(encoder, extra, where="encoder_kwargs.")
    kw: dict[str, Any] = dict(in_chans=in_chans, weights=weights, **extra)
    if img_size is not None and ENCODERS.accepts(encoder, "img_size"):
        kw["img_size"] = img_size
    enc = ENCODERS.create(encoder, **kw)
    if checkpoint:
        load_encoder_checkpoint(enc, checkpoint)
    return enc


def check_neck(neck: object) -> str:
    """``neck`` is ``"auto"``, ``"none"`` or a registered neck; returns it."""
    if neck in NECK_CHOICES or neck in NECKS:
        return str(neck)
    raise ConfigError(f"neck must be one of {', '.join(NECK_CHOICES + tuple(NECKS.list()))}; found {neck!r}")


def single_scale(module: nn.Module) -> bool:
    """True when all of a feature extractor's maps have the same stride (a plain ViT)."""
    return len(set(module.reductions)) == 1


def build_neck(neck: str, encoder: nn.Module, channels: int) -> nn.Module | None:
    """``"auto"``: the simple pyramid for a single-scale encoder, else none; ``"none"``; or a registered neck."""
    neck = check_neck(neck)
    if neck == "auto":
        neck = "pyramid" if single_scale(encoder) else "none"
    if neck == "none":
        return None
    return NECKS.create(neck, in_channels=encoder.out_channels, reductions=encoder.reductions, out_channels=channels)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Create a registered model by name, e.g. ``create_model("resunet_resnet50", encoder_weights="r50.pth")`` or
    ``create_model("upernet", encoder="vit_small_patch16", img_size=224)``. Unknown keys are a ConfigError."""
    MODELS.check_kwargs(name, kwargs)
    return MODELS.create(name, **kwargs)


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.list(pattern)


def encoder_spec(model_spec: dict | str) -> dict:
    """The encoder spec (``{"name": ..., **kwargs}``, see :mod:`sonokit.models.encoders`) of a model spec such
    as ``{"name": "resunet_resnet18"}`` or ``{"name": "unet", "encoder": "vit_tiny_patch16", "img_size": 64}``.

    The model is built on the ``meta`` device without its weight files, so nothing is allocated or read: this
    is cheap even for a ViT-L. It names the encoder an SSL method must pretrain for a fine-tuning model."""
    name, kw = split_spec(model_spec, "model", "model")
    MODELS.check_kwargs(name, kw, where="model.")
    kw = MODELS.rebuild_kwargs(name, kw)
    with torch.device("meta"):
        model = MODELS.create(name, **kw)
    spec = getattr(getattr(model, "encoder", None), "spec", None)
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ConfigError(f"model '{name}' has no encoder with a spec (expected model.encoder.spec = "
                          f"{{'name': ..., ...}}); found {spec!r}")
    return dict(spec)
