"""Loading encoder weights: sonokit encoder files (``sonokit pretrain``) and readable load errors."""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ...errors import CheckpointError


def load_encoder_checkpoint(encoder: nn.Module, path: str | Path) -> None:
    """Load encoder weights saved by sonokit (``sonokit pretrain``) or a plain state dict for this encoder.

    Accepts ``.safetensors`` or torch files holding either the state dict itself or
    ``{"encoder": state_dict}`` / ``{"state_dict": {"encoder.*": ...}}``. Keys must match exactly.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"encoder checkpoint '{p}' does not exist")
    if p.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(p), "pt") as fh:
            meta = fh.metadata() or {}
        want = getattr(encoder, "name", None)
        if meta.get("encoder") and want and meta["encoder"] != want:
            raise CheckpointError(f"encoder checkpoint '{p}' holds a '{meta['encoder']}' encoder (pretrained with "
                                  f"{meta.get('method', '?')}), but the model's encoder is '{want}'; "
                                  f"{_choose_model_hint(meta['encoder'])}")
        sd = load_file(str(p))
    else:
        obj = torch.load(p, map_location="cpu", weights_only=False)
        sd = obj.get("encoder", obj.get("state_dict", obj)) if isinstance(obj, dict) else obj
    if any(k.startswith("encoder.") for k in sd):
        sd = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
    own = encoder.state_dict()
    wrong = [k for k, v in sd.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if wrong:
        raise CheckpointError(
            f"encoder checkpoint '{p}' does not fit encoder '{getattr(encoder, 'name', type(encoder).__name__)}': "
            f"{len(wrong)} tensors have other shapes (e.g. {wrong[0]}: {tuple(sd[wrong[0]].shape)} vs {tuple(own[wrong[0]].shape)})"
        )
    missing, unexpected = encoder.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"encoder checkpoint '{p}' does not fit encoder '{getattr(encoder, 'name', type(encoder).__name__)}': "
            f"{len(missing)} missing keys (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )


def _choose_model_hint(encoder: str) -> str:
    """How to pick a model whose encoder is ``encoder`` (the registered ``resunet_<encoder>`` when there is one)."""
    from ..builder import MODELS  # the model registry imports this module

    if f"resunet_{encoder}" in MODELS:
        return f"choose the model resunet_{encoder}"
    return f"choose a model with encoder '{encoder}' (e.g. model unet or upernet with encoder: {encoder})"


_SIZE = re.compile(r"size mismatch for ([\w.]+): copying a param with shape torch\.Size\(\[([\d, ]*)\]\) from "
                   r"checkpoint, the shape in current model is torch\.Size\(\[([\d, ]*)\]\)")
_KEYS = re.compile(r"(Missing|Unexpected) key\(s\) in state_dict: ((?:\"[^\"]+\"(?:, )?)+)")


def describe_load_error(err: BaseException, limit: int = 3) -> str:
    """A short account of a ``load_state_dict`` failure: ``key: expected (..), found (..) in the file``, and
    missing / unexpected keys, from torch's error text (the text itself, shortened, when it is not one)."""
    text = str(err)
    parts = [f"{k}: expected ({e}), found ({f}) in the file" for k, f, e in _SIZE.findall(text)]
    n_size = len(parts)
    parts = parts[:limit] + ([f"... {n_size - limit} more shape mismatches"] if n_size > limit else [])
    for kind, keys in _KEYS.findall(text):
        names = re.findall(r"\"([^\"]+)\"", keys)
        more = f", ... ({len(names)} in all)" if len(names) > limit else ""
        parts.append(f"{kind.lower()} keys {', '.join(names[:limit])}{more}")
    return "; ".join(parts) if parts else " ".join(text.split())[:300]
