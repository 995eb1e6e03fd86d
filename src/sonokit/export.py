"""Export a trained model: safetensors (weights + metadata) or ONNX (graph, dynamic batch and size).

Both read the training checkpoint safely and rebuild its model from the registry record, so any
registered segmentation or classification model exports the same way. ONNX input: ``image`` (B, 1, H, W)
float32 in [0, 1] (letterboxed to the training size as sonokit does); output ``logits`` (the model's
``logits`` when it returns several outputs).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .errors import ConfigError


def export_model(checkpoint: str | Path, out: str | Path, *, trust: bool = False) -> str:
    """Export the model of ``checkpoint`` to ``out`` (.safetensors or .onnx); returns the model's name."""
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
        export_onnx(model, int(hp["image_size"]), out, task=hp.get("task", "segment"))
    return str(hp["model"])


def export_safetensors(model: torch.nn.Module, hp: dict, out: str | Path) -> Path:
    """Weights of ``model`` with what rebuilds it (name, arguments, input size, task, classes) as metadata."""
    from safetensors.torch import save_file

    from .data.io import atomic_write
    from .models import MODELS

    out = Path(out)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    kw = MODELS.rebuild_kwargs(hp["model"], dict(hp.get("model_kwargs") or {}))
    meta = {"sonokit_model": str(hp["model"]), "model_kwargs": json.dumps(kw, default=list),
            "image_size": str(hp["image_size"]), "task": str(hp.get("task", "segment")),
            "classes": json.dumps((hp.get("data") or {}).get("classes")),
            "input": "(B, 1, S, S) float32 in [0, 1], letterboxed", "output": "logits"}
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
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise CheckpointError(f"'{path}' does not fit model '{meta['sonokit_model']}': {str(e)[:300]}") from None
    return model.eval(), meta


class _LogitsOnly(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out["logits"] if isinstance(out, dict) else out


def export_onnx(model: torch.nn.Module, image_size: int, out: str | Path, *, task: str = "segment",
                opset: int = 17) -> Path:
    """ONNX graph with dynamic batch, height and width (needs the ``onnx`` extra: pip install 'sonokit[onnx]')."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs the 'onnx' package: pip install 'sonokit[onnx]'") from None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    net = _LogitsOnly(model.cpu().eval())
    x = torch.rand(1, 1, image_size, image_size)
    torch.onnx.export(net, (x,), str(out), input_names=["image"], output_names=["logits"], opset_version=opset,
                      dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                    "logits": {0: "batch", 2: "height", 3: "width"} if task == "segment" else {0: "batch"}},
                      dynamo=False)
    return out
