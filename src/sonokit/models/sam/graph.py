"""What of SF-RecSAM an ONNX graph can hold: the base network, with its automatic box prompt.

:func:`onnx_module` gives :func:`sonokit.export.export_onnx` a module that maps a letterboxed image
(B, 1, S, S) in [0, 1] to the **initial mask's** logits (B, 1, S, S): image encoder (adapters, CNN branch, the
spatial-frequency fusion, whose FFTs are traced as the equivalent matrix products,
:func:`.fusion.frequency_filter_dft`), SAM's promptless coarse mask, the box of the coarse mask's foreground
scaled by ``box_scale`` (the centred fallback box when it is empty), optionally the centroid point, the prompt
encoder and the mask decoder — the same computation as sonokit's model, with two differences it names:

* the box is drawn around **all** coarse-mask pixels: ``box_component: largest`` (the default) picks the
  largest connected component with scipy, which no ONNX operator does; on images whose coarse mask has
  several blobs the ONNX box (and mask) differ from sonokit's;
* **no correction**: the dual corrector's uncertainty needs T stochastic decoder passes, FNPC K sampled point
  prompts and scipy-free intensity rules on the voted mask; neither is in the graph, so an ONNX model of a
  ``corrector: dual | fp | fn | fnpc`` run outputs the initial mask, and its uncertainty and FP / FN maps
  come only from ``sonokit segment --save-uncertainty`` on the checkpoint, or from the whole model, which the
  ``.safetensors`` export holds (:func:`sonokit.export.load_safetensors_model`).

The graph's input size is fixed at ``img_size`` (the encoder's position embeddings and the fusion's filters
are built for its token grid); the batch size is dynamic.
"""
from __future__ import annotations

import torch
from torch import nn

from .decoder import embed_prompts, no_prompt
from .prompts import centroid_points, mask_boxes, scale_boxes


class BaseNetworkGraph(nn.Module):
    """The traceable base network of an :class:`.sfrecsam.SFRecSAM` (module docstring); shares its weights."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        S = m.img_size
        emb = m.image_encoder(x)  # (B, 256, g, g)
        coarse = m.decode(emb, *no_prompt(m.prompt_encoder, x.shape[0]))  # (B, 1, S, S)
        fg = coarse[:, 0] > 0
        boxes, found = mask_boxes(fg)
        boxes = torch.where(found[:, None], scale_boxes(boxes, m.box_scale, (S, S)), boxes)
        points = centroid_points(fg) if m.point_prompt else None
        return m.decode(emb, *embed_prompts(m.prompt_encoder, boxes, points))


def onnx_module(model: nn.Module) -> dict:
    """``{"module", "note", "dynamic_size", "partial"}`` for :func:`sonokit.export.export_onnx` (see the module
    docstring); ``partial``: the graph's masks may differ from the model's (a corrector or the largest-component
    box), so inference must not run it in the model's place."""
    parts = ["ONNX holds SF-RecSAM's base network (image -> initial mask logits, box prompt in the graph)"]
    if model.box_component != "all":
        parts.append(f"its box is drawn around all coarse-mask pixels, not the '{model.box_component}' "
                     "connected component sonokit uses (not expressible in ONNX): masks differ where the coarse "
                     "mask has several blobs")
    if model.corrector_kind != "none":
        parts.append(f"the '{model.corrector_kind}' corrector (stochastic passes) is NOT exported: the ONNX "
                     "output is the uncorrected initial mask; for the corrected mask and the uncertainty / FP / "
                     "FN maps use `sonokit segment --save-uncertainty` on the checkpoint (or, in Python, the model "
                     "of the .safetensors export: sonokit.export.load_safetensors_model)")
    parts.append(f"input (B, 1, {model.img_size}, {model.img_size}) letterboxed, fixed size, dynamic batch")
    partial = model.box_component != "all" or model.corrector_kind != "none"
    return {"module": BaseNetworkGraph(model), "note": "; ".join(parts), "dynamic_size": False, "partial": partial}
