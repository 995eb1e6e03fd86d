"""Loading encoder weights: sonokit encoder files (``sonokit pretrain``), timm/ImageNet weight files, and
readable load errors. Every file is read with :func:`sonokit.serialization.load_weights` (never with ``trust``:
a file that would run code is refused); timm is handed the state dict, never the path."""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ...errors import CheckpointError


def load_encoder_checkpoint(encoder: nn.Module, path: str | Path) -> None:
    """Load encoder weights saved by sonokit (``sonokit pretrain``) or a plain state dict for this encoder.

    Accepts safetensors or torch files (read with :func:`sonokit.serialization.load_weights`, never with
    ``trust``: a file that would run code is refused) holding either the state dict itself or
    ``{"encoder": state_dict}`` / ``{"state_dict": {"encoder.*": ...}}``. Keys must match exactly.
    """
    from ...serialization import load_weights

    p = Path(path)
    obj, meta = load_weights(p, trustable=False)  # a model factory: no trust
    want = getattr(encoder, "name", None)
    if meta.get("encoder") and want and meta["encoder"] != want:
        raise CheckpointError(f"encoder checkpoint '{p}' holds a '{meta['encoder']}' encoder (pretrained with "
                              f"{meta.get('method', '?')}), but the model's encoder is '{want}'; "
                              f"{_choose_model_hint(meta['encoder'])}")
    sd = obj.get("encoder", obj.get("state_dict", obj))
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"encoder checkpoint '{p}' holds no state dict (found keys {sorted(obj)[:6]}); "
                              f"expected the encoder.safetensors of `sonokit pretrain`, a state dict, or "
                              f"{{'encoder': state_dict}} / {{'state_dict': {{'encoder.*': ...}}}}")
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


# a timm/ImageNet file may hold the classifier the feature extractor lacks
CLASSIFIER_PREFIXES = ("fc.", "head.")


def read_timm_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A timm-format / ImageNet weights file as a state dict, read safely and unwrapped as timm's own
    ``load_state_dict`` would (EMA weights first, then ``state_dict`` / ``model``; ``module.`` prefixes removed)."""
    from timm.models import clean_state_dict

    from ...serialization import load_weights

    p = Path(path)
    obj, _ = load_weights(p, trustable=False)  # a model factory: no trust
    inner = next((obj[k] for k in ("state_dict_ema", "model_ema", "state_dict", "model") if isinstance(obj.get(k), dict)),
                 None)
    sd = clean_state_dict(obj if inner is None else inner)
    if not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"weights file '{p}' holds no state dict (found keys {sorted(sd)[:6]}); expected a "
                              f"timm/ImageNet checkpoint: a dict of tensors, or one under 'state_dict' / 'model'")
    return sd


def load_timm_weights(model: nn.Module, path: str | Path, *, in_chans: int, what: str, filter_fn=None,
                      architecture: str = "architecture") -> None:
    """Load the timm-format weights file ``path`` into the timm ``model`` (a feature extractor or a ViT without
    classifier), strictly but for the classifier.

    timm's own loader does the work (``load_pretrained``, handed the state dict read by :func:`read_timm_weights`):
    it applies ``filter_fn`` (e.g. the ViT position-embedding resampling) and sums an RGB stem to ``in_chans``.
    It loads non-strictly, so the keys are checked here: a classifier (``fc.*`` / ``head.*``) the model lacks is
    fine; any other key missing from the file or unexpected in it is a :class:`CheckpointError` naming a few.
    """
    from timm.models import load_pretrained

    from ...errors import SonokitError

    p = Path(path)
    sd = read_timm_weights(p)
    own = set(model.state_dict())
    for k in [k for k in sd if k.startswith(CLASSIFIER_PREFIXES) and k not in own]:
        del sd[k]  # the ImageNet classifier a feature extractor lacks
    # the state dict, and no other source: timm reads nothing and downloads nothing
    cfg = dict(model.pretrained_cfg, state_dict=sd, file=None, url=None, hf_hub_id=None, source=None,
               num_classes=1000)  # != the model's 0 classes: timm drops the classifier where it knows it
    found: list = []
    handle = model.register_load_state_dict_post_hook(lambda module, keys: found.append(keys))
    try:
        load_pretrained(model, pretrained_cfg=cfg, num_classes=0, in_chans=in_chans, filter_fn=filter_fn,
                        strict=False)
    except SonokitError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to fit the file is the file's
        raise CheckpointError(f"weights '{p}' do not fit {what}: {describe_load_error(e)}") from None
    finally:
        handle.remove()
    missing = list(found[-1].missing_keys) if found else []
    unexpected = list(found[-1].unexpected_keys) if found else []
    if missing or unexpected:
        parts = [f"{len(keys)} {kind} keys (e.g. {', '.join(keys[:3])})" for kind, keys in
                 (("missing", missing), ("unexpected", unexpected)) if keys]
        raise CheckpointError(f"weights '{p}' do not fit {what}: {'; '.join(parts)}; expected a checkpoint of the "
                              f"same {architecture}")


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
