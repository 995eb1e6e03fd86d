"""Export a trained model: safetensors (weights + metadata) or ONNX (graph, dynamic batch and size)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .errors import ConfigError
from .inference import Segmenter


def export_safetensors(seg: Segmenter, out: str | Path) -> Path:
    """Weights of ``seg.model`` with the model name, its arguments and the input size as metadata."""
    from safetensors.torch import save_file

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().contiguous() for k, v in seg.model.state_dict().items()}
    kw = {k: v for k, v in (seg.hparams.get("model_kwargs") or {}).items() if k not in ("encoder_weights", "encoder_checkpoint")}
    meta = {"sonokit_model": str(seg.hparams["model"]), "model_kwargs": json.dumps(kw, default=list),
            "image_size": str(seg.image_size), "input": "(B, 1, S, S) float32 in [0, 1], letterboxed",
            "output": "(B, 1, S, S) logits"}
    save_file(sd, str(out), metadata=meta)
    return out


def load_safetensors_model(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model saved by :func:`export_safetensors`; returns (model, metadata)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from .models import create_model

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    kw = json.loads(meta["model_kwargs"])
    if "decoder_channels" in kw:
        kw["decoder_channels"] = tuple(kw["decoder_channels"])
    model = create_model(meta["sonokit_model"], **kw)
    model.load_state_dict(load_file(str(path)))
    return model.eval(), meta


def export_onnx(seg: Segmenter, out: str | Path, *, opset: int = 17) -> Path:
    """ONNX graph with dynamic batch, height and width (needs the ``onnx`` extra: pip install 'sonokit[onnx]')."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs the 'onnx' package: pip install 'sonokit[onnx]'") from None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = seg.model.cpu().eval()
    x = torch.rand(1, 1, seg.image_size, seg.image_size)
    torch.onnx.export(model, (x,), str(out), input_names=["image"], output_names=["logits"], opset_version=opset,
                      dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                    "logits": {0: "batch", 2: "height", 3: "width"}}, dynamo=False)
    return out
