"""Weights for the SAM models: official SAM checkpoints (``sam_checkpoint``) and sonokit-pretrained ViTs
(``encoder_init``). Every file is read with :func:`sonokit.serialization.load_weights` (nothing in it can run).

**Official checkpoints** (``sam_vit_b_01ec64.pth``, ``sam_vit_l_0b3195.pth``, ``sam_vit_h_4b8939.pth``: a state
dict with ``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``) — :func:`load_sam_checkpoint`:

* the file's image encoder (embedding width, number of blocks) must be the model's variant;
* the global blocks' relative-position tables are interpolated (linear, half-pixel) from SAM's 2 * 64 - 1 = 127
  entries to the model's 2 * grid - 1 (63 at 32 tokens) — SAMUS's ``load_from2`` does the same;
* every SAM tensor of the model must be in the file, with its shape, and nothing else may be: what sonokit adds
  (``*adapter*``, ``cnn_branch``, ``fusion``, ``corrector``) keeps its initialisation.

With another image encoder (``image_encoder: avit_tiny_patch16`` ...) :func:`load_sam_decoder` takes only the
file's prompt encoder and mask decoder.

**Pretrained ViTs** — :func:`load_vit_init` maps a timm ViT (``encoder.safetensors`` of ``sonokit pretrain``
with a ``vit_*_patch16`` encoder: timm keys under ``model.``) onto SAM's image encoder: the patch embedding
(a gray kernel spread over SAM's 3 normalised channels so that it computes the same on the gray image), the
blocks (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1 -> mlp.lin1``, ``mlp.fc2 -> mlp.lin2``) and
the absolute position embedding (class token dropped, resampled to SAM's 64 x 64 grid). Without counterpart:
SAM's relative-position tables (they stay zero: attention is then exactly the ViT's) and the neck (random);
the file's class token and final norm are unused. The mapping is logged and kept as ``encoder.init_report``.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import CheckpointError
from .encoder import SAM_GRID, SAM_VARIANTS, SamImageEncoder

log = logging.getLogger("sonokit.models")

NEW_MODULES = ("adapter", "cnn_branch", "fusion", "corrector")  # sonokit's additions: never in a SAM file
PATCH_KEY = "image_encoder.patch_embed.proj.weight"
OFFICIAL = {"vit_b": "sam_vit_b_01ec64.pth", "vit_l": "sam_vit_l_0b3195.pth", "vit_h": "sam_vit_h_4b8939.pth"}
_BLOCK = re.compile(r"blocks\.(\d+)\.")


def is_new(key: str) -> bool:
    return any(m in key for m in NEW_MODULES)


def _unwrap(obj: dict, p: Path) -> dict[str, torch.Tensor]:
    for k in ("model", "state_dict"):
        if isinstance(obj.get(k), dict):
            obj = obj[k]
    if not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"'{p}' holds no state dict (found keys {sorted(obj)[:6]}); expected a dict of tensors")
    return obj


def _misfits(own: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> tuple[list[str], str]:
    """The keys of ``own`` whose tensor in ``got`` has another shape, and the first three as 'key: expected ...,
    found ...' for an error message."""
    wrong = [k for k, ref in own.items() if tuple(got[k].shape) != tuple(ref.shape)]
    return wrong, "; ".join(f"{k}: expected {tuple(own[k].shape)}, found {tuple(got[k].shape)}" for k in wrong[:3])


def describe(sd: dict[str, torch.Tensor], prefix: str) -> tuple[int, int] | None:
    """``(embed dim, number of blocks)`` of the SAM image encoder under ``prefix`` in ``sd``, or None."""
    w = sd.get(f"{prefix}patch_embed.proj.weight")
    if w is None:
        return None
    return int(w.shape[0]), n_blocks(k[len(prefix):] for k in sd if k.startswith(prefix))


def n_blocks(keys) -> int:
    """1 + the largest ``blocks.N.`` index among ``keys`` (0 without blocks)."""
    idx = [int(m.group(1)) for m in map(_BLOCK.match, keys) if m]
    return 1 + max(idx) if idx else 0


def variant_of(dim: int, depth: int) -> str | None:
    """The SAM variant with this width and depth, or None."""
    return next((n for n, v in SAM_VARIANTS.items() if (v.embed_dim, v.depth) == (dim, depth)), None)


def resize_rel_pos(t: torch.Tensor, length: int) -> torch.Tensor:
    """A relative-position table (L, head_dim) linearly resampled to (length, head_dim)."""
    if t.shape[0] == length:
        return t
    return F.interpolate(t.float().T[None], size=length, mode="linear", align_corners=False)[0].T.to(t.dtype)


def load_sam_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load an official SAM checkpoint into ``model`` (which has ``image_encoder``, ``prompt_encoder`` and
    ``mask_decoder``), as the module docstring says; any misfit is a :class:`CheckpointError` naming the file."""
    from ...serialization import load_weights

    p = Path(path)
    sd = _unwrap(load_weights(p, trustable=False)[0], p)
    enc: SamImageEncoder = model.image_encoder
    want = (enc.embed_dim, len(enc.blocks))
    found = describe(sd, "image_encoder.")
    if found is None:
        hint = (" — it looks like a sonokit/timm ViT: give it as encoder_init instead"
                if any(k.startswith(("model.blocks.", "blocks.")) for k in sd) else "")
        raise CheckpointError(f"SAM checkpoint '{p}' holds no SAM image encoder (no '{PATCH_KEY}'; found keys like "
                              f"{', '.join(sorted(sd)[:3])}){hint}; expected an official SAM file such as "
                              f"{OFFICIAL['vit_b']} (image_encoder.*, prompt_encoder.*, mask_decoder.*)")
    if found != want:
        name = variant_of(*found)
        fix = f"set sam_variant: {name}" if name else "give a SAM checkpoint of the model's variant"
        raise CheckpointError(f"SAM checkpoint '{p}' holds {f'a {name}' if name else 'an unknown'} image encoder "
                              f"(embed dim {found[0]}, {found[1]} "
                              f"blocks); the model is {enc.variant} ({want[0]}, {want[1]}); {fix}")
    own = {k: v for k, v in model.state_dict().items() if not is_new(k)}
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        parts = [f"{len(ks)} {what} (e.g. {', '.join(ks[:3])})" for what, ks in
                 (("SAM tensors of the model are missing from the file", missing),
                  ("tensors in the file have no place in the model", unexpected)) if ks]
        raise CheckpointError(f"SAM checkpoint '{p}' does not fit the {enc.variant} SAM model: {'; '.join(parts)}; "
                              f"expected the complete official layout (as {OFFICIAL.get(enc.variant, 'sam_vit_b')})")
    fitted = {}
    for k, ref in own.items():
        v = sd[k]
        if "rel_pos" in k and v.ndim == 2 and v.shape[1] == ref.shape[1]:
            v = resize_rel_pos(v, ref.shape[0])
        fitted[k] = v
    wrong, shown = _misfits(own, fitted)
    if wrong:
        raise CheckpointError(f"SAM checkpoint '{p}' does not fit the {enc.variant} SAM model: {len(wrong)} tensors "
                              f"have other shapes ({shown})")
    model.load_state_dict(fitted, strict=False)
    log.info("loaded SAM checkpoint %s (%d tensors; %d of sonokit's own tensors keep their initialisation)", p,
             len(fitted), sum(1 for k in model.state_dict() if is_new(k)))


def load_sam_decoder(model: nn.Module, path: str | Path) -> None:
    """SAM's prompt encoder and mask decoder from an official SAM checkpoint, for a model whose image encoder is
    not SAM's (``image_encoder: avit_tiny_patch16`` ...); the file's image encoder is not used. Their shapes do
    not depend on the variant or the input size; any misfit is a :class:`CheckpointError` naming the file."""
    from ...serialization import load_weights

    p = Path(path)
    sd = _unwrap(load_weights(p, trustable=False)[0], p)
    parts = ("prompt_encoder.", "mask_decoder.")
    own = {k: v for k, v in model.state_dict().items() if k.startswith(parts)}
    missing = [k for k in own if k not in sd]
    if missing:
        raise CheckpointError(f"SAM checkpoint '{p}' lacks {len(missing)} prompt-encoder / mask-decoder tensors "
                              f"(e.g. {', '.join(missing[:3])}); expected an official SAM file such as "
                              f"{OFFICIAL['vit_b']} (image_encoder.*, prompt_encoder.*, mask_decoder.*)")
    wrong, shown = _misfits(own, sd)
    if wrong:
        raise CheckpointError(f"SAM checkpoint '{p}': {len(wrong)} prompt-encoder / mask-decoder tensors have other "
                              f"shapes ({shown})")
    model.load_state_dict({k: sd[k] for k in own}, strict=False)
    log.info("loaded SAM's prompt encoder and mask decoder from %s (%d tensors; the file's image encoder is not "
             "used)", p, len(own))


# -- a sonokit / timm ViT as initialisation -------------------------------------------------------------------

BLOCK_MAP = {"norm1": "norm1", "attn.qkv": "attn.qkv", "attn.proj": "attn.proj", "norm2": "norm2",
             "mlp.fc1": "mlp.lin1", "mlp.fc2": "mlp.lin2"}


def gray_patch_kernel(w: torch.Tensor, b: torch.Tensor | None, mean: torch.Tensor,
                      std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A ViT patch conv on images in [0, 1] (C, c, k, k) (c = 1 gray or 3) -> SAM's (C, 3, k, k) kernel and bias
    on ``(255 x - mean) / std``: the same output for a gray image repeated to 3 channels (and for RGB when c = 3).

    With c = 1 the gray kernel is spread evenly: ``w3_c = w std_c / (3 * 255)``; with c = 3 ``w3_c = w_c std_c /
    255``. The bias absorbs the mean: ``b3 = b + sum_c sum_kernel w3_c mean_c / std_c``."""
    C, c = w.shape[:2]
    if c not in (1, 3):
        raise CheckpointError(f"the ViT's patch embedding takes {c} channels; expected 1 (gray) or 3")
    s, m = std.view(1, 3, 1, 1), mean.view(1, 3, 1, 1)
    w3 = (w.expand(-1, 3, -1, -1) / 3 if c == 1 else w) * s / 255.0
    b3 = (b if b is not None else w.new_zeros(C)) + (w3 * m / s).sum((1, 2, 3))
    return w3, b3


def read_vit(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from ...serialization import load_weights

    obj, meta = load_weights(path, trustable=False)
    sd = _unwrap(obj["encoder"] if isinstance(obj.get("encoder"), dict) else obj, path)
    for prefix in ("encoder.", "model."):
        if any(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    return sd, meta


def load_vit_init(enc: SamImageEncoder, path: str | Path) -> dict:
    """Initialise SAM's image encoder ``enc`` from a timm ViT file (module docstring); returns the report
    ``{"mapped": [...], "unused_in_file": [...], "not_initialised": [...]}`` (also ``enc.init_report``)."""
    p = Path(path)
    sd, meta = read_vit(p)
    name = meta.get("encoder", "")
    if "patch_embed.proj.weight" not in sd or "blocks.0.attn.qkv.weight" not in sd:
        raise CheckpointError(f"encoder_init '{p}' holds no timm ViT{f' (its encoder is {name!r})' if name else ''}: "
                              f"expected patch_embed.proj.weight and blocks.*.attn.qkv.weight (the encoder.safetensors "
                              f"of `sonokit pretrain` with a vit_*_patch16 encoder); found keys like "
                              f"{', '.join(sorted(sd)[:3])}")
    dim = int(sd["patch_embed.proj.weight"].shape[0])
    depth = n_blocks(sd)
    if (dim, depth) != (enc.embed_dim, len(enc.blocks)):
        fits = {192: "vit_tiny (vit_tiny_patch16)", 768: "vit_b (vit_base_patch16)", 1024: "vit_l (vit_large_patch16)"}
        raise CheckpointError(f"encoder_init '{p}' holds a ViT{f' {name!r}' if name else ''} with embed dim {dim} and "
                              f"{depth} blocks; the SAM image encoder {enc.variant} has {enc.embed_dim} and "
                              f"{len(enc.blocks)}; SAM variants pair with sonokit ViTs as "
                              f"{', '.join(fits.values())}")
    own = enc.state_dict()
    new: dict[str, torch.Tensor] = {}
    w3, b3 = gray_patch_kernel(sd["patch_embed.proj.weight"].float(), sd.get("patch_embed.proj.bias"),
                               enc.pixel_mean.float().cpu(), enc.pixel_std.float().cpu())
    if tuple(w3.shape) != tuple(own["patch_embed.proj.weight"].shape):
        raise CheckpointError(f"encoder_init '{p}': patch embedding {tuple(sd['patch_embed.proj.weight'].shape)} does "
                              f"not fit SAM's {tuple(own['patch_embed.proj.weight'].shape)} (16x16 patches expected)")
    new["patch_embed.proj.weight"], new["patch_embed.proj.bias"] = w3, b3
    used = {"patch_embed.proj.weight", "patch_embed.proj.bias"}
    if "pos_embed" in sd:
        new["pos_embed"] = vit_pos_to_sam(sd["pos_embed"], p)
        used.add("pos_embed")
    for i in range(depth):
        for src, dst in BLOCK_MAP.items():
            for kind in ("weight", "bias"):
                k = f"blocks.{i}.{src}.{kind}"
                if k in sd:
                    new[f"blocks.{i}.{dst}.{kind}"] = sd[k]
                    used.add(k)
    wrong, shown = _misfits({k: own[k] for k in new}, new)
    if wrong:
        raise CheckpointError(f"encoder_init '{p}' does not fit SAM's {enc.variant} encoder: {shown}")
    enc.load_state_dict(new, strict=False)
    report = {"mapped": sorted(new), "unused_in_file": sorted(k for k in sd if k not in used),
              "not_initialised": sorted(k for k in own if k not in new and not is_new(k))}
    enc.init_report = report
    log.info("encoder_init %s: %d SAM tensors from the ViT; unused in the file: %s; no counterpart (kept as "
             "initialised): %s", p, len(new), ", ".join(report["unused_in_file"]) or "none",
             ", ".join(_summarise(report["not_initialised"])))
    return report


def vit_pos_to_sam(pos: torch.Tensor, p: Path) -> torch.Tensor:
    """timm's (1, [1 +] g * g, C) position embedding -> SAM's (1, 64, 64, C) (class token dropped, bilinear)."""
    n, C = pos.shape[1], pos.shape[2]
    for prefix in (0, 1):
        g = int(round((n - prefix) ** 0.5))
        if g * g == n - prefix:
            break
    else:
        raise CheckpointError(f"encoder_init '{p}': a position embedding of {n} tokens is no square grid "
                              f"(with or without a class token)")
    grid = pos[:, prefix:].reshape(1, g, g, C).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(SAM_GRID, SAM_GRID), mode="bilinear", align_corners=False)
    return grid.permute(0, 2, 3, 1)  # (1, 64, 64, C)


def _summarise(keys: list[str]) -> list[str]:
    """Keys with block numbers folded: ``blocks.*.attn.rel_pos_h`` once, not per block."""
    return sorted({_BLOCK.sub("blocks.*.", k) for k in keys})
