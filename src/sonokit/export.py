"""Export a trained model: safetensors (weights + metadata) or ONNX (graph, dynamic batch and size).

Both read the training checkpoint safely and rebuild its model from the registry record, so any
registered segmentation or classification model exports the same way. ONNX input: ``image`` (B, 1, H, W)
float32 in [0, 1] (letterboxed to the training size as sonokit does); output ``logits`` (the model's
``logits`` when it returns several outputs).

A model whose forward pass cannot be traced as a whole (data-dependent prompts, stochastic passes) defines
``onnx_module() -> {"module", "note", "dynamic_size"}``: the traceable part to export, a note saying what the
graph holds and leaves out (printed by ``sonokit export`` and stored in the ONNX file's metadata as
``sonokit_note``), and whether height and width may vary. SF-RecSAM's: :mod:`sonokit.models.sam.graph`.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .errors import ConfigError
from .inference.onnx import export_onnx  # noqa: F401  (sonokit.export.export_onnx, as before)


def export_model(checkpoint: str | Path, out: str | Path, *, trust: bool = False,
                 log=None) -> str:
    """Export the model of ``checkpoint`` to ``out`` (.safetensors or .onnx); returns the model's name.
    ``log`` receives the note of a model that exports only part of itself to ONNX (:func:`export_onnx`)."""
    from .inference import build_model, read_task_checkpoint

    out = Path(out)
    if out.suffix not in (".safetensors", ".onnx"):
        raise ConfigError(f"--out '{out}' must end in .safetensors or .onnx")
    ckpt = read_task_checkpoint(checkpoint, expect=("segment", "classify"), trust=trust)
    hp = ckpt["hyper_parameters"]
    model = build_model(ckpt, checkpoint)
    if out.suffix == ".safetensors":
        export_safetensors(model, hp, out)
    else:
        note = export_onnx(model, int(hp["image_size"]), out, task=hp.get("task", "segment"))
        if note and log is not None:
            log(f"note: {note}")
    return str(hp["model"])


def export_safetensors(model: torch.nn.Module, hp: dict, out: str | Path, *, fp16: bool = False,
                       extra: dict[str, str] | None = None) -> Path:
    """Weights of ``model`` with what rebuilds it (name, arguments, input size, task, classes) as metadata;
    ``fp16``: floating tensors stored in half precision (read back as float32 by sonokit's loaders). An
    enhancement model (``hp["task"] == "enhance"``) records its size multiple and its ``image`` settings
    (``hparams``) instead of an input size; ``extra``: more metadata strings."""
    from safetensors.torch import save_file

    from .data.io import atomic_write
    from .models import MODELS

    out = Path(out)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if fp16:
        sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    if hp.get("task") == "enhance":
        from .enhance.models import ENHANCERS

        kw = ENHANCERS.rebuild_kwargs(hp["model"], dict(hp.get("model_kwargs") or {}))
        meta = {"sonokit_model": str(hp["model"]), "model_kwargs": json.dumps(kw, default=list), "task": "enhance",
                "multiple": str(int(getattr(model, "multiple", 1))),
                "hparams": json.dumps({"image": hp.get("image")}, default=list),
                "input": "(B, 1, H, W) float32 in [0, 1]", "output": "enhanced image"}
    else:
        kw = MODELS.rebuild_kwargs(hp["model"], dict(hp.get("model_kwargs") or {}))
        meta = {"sonokit_model": str(hp["model"]), "model_kwargs": json.dumps(kw, default=list),
                "image_size": str(hp["image_size"]), "task": str(hp.get("task", "segment")),
                "classes": json.dumps((hp.get("data") or {}).get("classes")),
                "input": "(B, 1, S, S) float32 in [0, 1], letterboxed", "output": "logits"}
    meta.update(extra or {})
    return atomic_write(out, lambda tmp: save_file(sd, tmp, metadata=meta))


def load_safetensors_model(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model saved by :func:`export_safetensors`; returns (model in eval mode, metadata)."""
    from .errors import CheckpointError
    from .models import create_model
    from .serialization import load_weights

    sd, meta = load_weights(path, trustable=False)  # no trust: an exported model is safetensors
    if "sonokit_model" not in meta:
        raise CheckpointError(f"'{path}' has no sonokit_model metadata; expected a file from `sonokit export`")
    model = create_model(meta["sonokit_model"], **json.loads(meta.get("model_kwargs") or "{}"))
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}  # fp16 exports: as float32
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise CheckpointError(f"'{path}' does not fit model '{meta['sonokit_model']}': {str(e)[:300]}") from None
    return model.eval(), meta


