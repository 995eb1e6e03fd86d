"""Helpers of the SAM tests: tiny models and SAM checkpoints of the official layout."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from sonokit.models import create_model
from sonokit.models.sam import SAM_VARIANTS

TINY = dict(sam_variant="vit_tiny", img_size=64)  # 8 x 8 tokens at patch stride 8


def tiny(name: str = "sfrecsam", seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(name, **(TINY | kw))


def official_sam(variant: str = "vit_tiny") -> Sam:
    """A randomly initialised SAM in the official layout (what ``segment_anything.build_sam_*`` builds: 1024 px,
    64 x 64 tokens, 127-entry relative positions in the global blocks), for any sonokit variant."""
    v = SAM_VARIANTS[variant]
    enc = ImageEncoderViT(depth=v.depth, embed_dim=v.embed_dim, img_size=1024, mlp_ratio=4,
                          norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=v.num_heads, patch_size=16,
                          qkv_bias=True, use_rel_pos=True, global_attn_indexes=list(v.global_attn), window_size=14,
                          out_chans=256)
    prompt = PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                           mask_in_chans=16)
    dec = MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048,
                                                                             num_heads=8),
                      transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256)
    return Sam(image_encoder=enc, prompt_encoder=prompt, mask_decoder=dec)


def randomise(sd: dict, seed: int = 1) -> dict:
    """Every tensor filled with noise (SAM zero-initialises its position tables), so loading is visible."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v for k, v in sd.items()}


def save_official(path: Path, variant: str = "vit_tiny", sd: dict | None = None) -> dict:
    """Write a state dict of the official layout (``torch.save``, as ``sam_vit_b_01ec64.pth``); returns it."""
    torch.manual_seed(0)
    sd = randomise(official_sam(variant).state_dict()) if sd is None else sd
    torch.save(sd, path)
    return sd


def grads_ok(model: torch.nn.Module, loss_fn, steps: int = 2) -> list[str]:
    """``steps`` SGD steps, then another backward: the names of trainable parameters without a non-zero gradient
    (zero-initialised layers pass gradients on only after a step; the fusion gate after two)."""
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
    model.zero_grad()
    loss = loss_fn()
    assert torch.isfinite(loss)
    loss.backward()
    return [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
