"""SAM's prompt encoder and mask decoder (``segment_anything``, official sizes), run batched: image i with
prompt i.

SAM's own ``MaskDecoder.forward`` decodes one image against N prompts (it repeats the image embedding per
prompt); sonokit decodes B images with one prompt each, so :func:`decode` pairs them row by row using the
decoder's own layers (two-way transformer, output upscaling, the first mask token's hypernetwork MLP: SAM's
single-mask output, ``multimask_output=False``). Parameter names stay ``prompt_encoder.*`` / ``mask_decoder.*``
as in the official checkpoints.
"""
from __future__ import annotations

import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer

PROMPT_DIM = 256


def build_prompt_decoder(grid: int, img_size: int) -> tuple[PromptEncoder, MaskDecoder]:
    """SAM's prompt encoder for a (grid, grid) embedding of an (img_size, img_size) image, and its mask decoder
    (the configuration of ``segment_anything.build_sam``, the same for every variant)."""
    prompt = PromptEncoder(embed_dim=PROMPT_DIM, image_embedding_size=(grid, grid),
                           input_image_size=(img_size, img_size), mask_in_chans=16)
    decoder = MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(depth=2, embedding_dim=PROMPT_DIM,
                                                                                 mlp_dim=2048, num_heads=8),
                          transformer_dim=PROMPT_DIM, iou_head_depth=3, iou_head_hidden_dim=256)
    return prompt, decoder


def no_prompt(prompt: PromptEncoder, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of "no prompt": no sparse tokens (B, 0, 256) and SAM's ``no_mask_embed`` (B, 256, grid, grid)."""
    w = prompt.no_mask_embed.weight  # (1, 256)
    h, wd = prompt.image_embedding_size
    sparse = w.new_zeros(batch, 0, PROMPT_DIM)
    return sparse, w.reshape(1, -1, 1, 1).expand(batch, -1, h, wd)


def embed_prompts(prompt: PromptEncoder, boxes: torch.Tensor | None = None,
                  points: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse (B, N, 256) and dense (B, 256, grid, grid) embeddings of boxes (B, 4) ``x0, y0, x1, y1`` and/or
    points ((B, K, 2) ``x, y``, labels (B, K): 1 positive, 0 negative, -1 ignored), in input-image pixels."""
    if boxes is None and points is None:
        raise ValueError("embed_prompts needs boxes or points (use no_prompt for neither)")
    B = (boxes if boxes is not None else points[0]).shape[0]
    _, dense = no_prompt(prompt, B)
    parts = []
    if points is not None:
        parts.append(prompt._embed_points(points[0].float(), points[1], pad=boxes is None))
    if boxes is not None:
        parts.append(prompt._embed_boxes(boxes.float()))
    return torch.cat(parts, 1), dense


def decode(decoder: MaskDecoder, emb: torch.Tensor, pe: torch.Tensor, sparse: torch.Tensor,
           dense: torch.Tensor) -> torch.Tensor:
    """SAM's single-mask logits for image i with prompt i.

    Args:
        emb: image embeddings (N, 256, h, w); pe: the dense positional encoding (1, 256, h, w);
        sparse: prompt tokens (N, K, 256) (K may be 0); dense: dense prompt embeddings (N, 256, h, w).
    Returns: low-resolution mask logits (N, 1, 4h, 4w).
    """
    N, C, h, w = emb.shape
    if sparse.shape[0] != N or dense.shape[0] != N:
        raise ValueError(f"decode pairs images with prompts: {N} embeddings, {sparse.shape[0]} sparse and "
                         f"{dense.shape[0]} dense prompts")
    out_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], 0)  # (1 + n_masks, 256)
    tokens = torch.cat([out_tokens.unsqueeze(0).expand(N, -1, -1), sparse.to(out_tokens.dtype)], 1)
    src = emb + dense  # (N, 256, h, w)
    hs, src = decoder.transformer(src, pe.expand(N, -1, -1, -1), tokens)  # hs (N, T, 256); src (N, h*w, 256)
    up = decoder.output_upscaling(src.transpose(1, 2).reshape(N, C, h, w))  # (N, 32, 4h, 4w)
    hyper = decoder.output_hypernetworks_mlps[0](hs[:, 1])  # (N, 32): the first mask token
    return torch.einsum("nc,nchw->nhw", hyper, up).unsqueeze(1)  # (N, 1, 4h, 4w)

