"""The ONNX graph of a model (:func:`export_onnx`), used by ``sonokit export`` (:mod:`sonokit.export`) and by
the ONNX Runtime backend of inference (:mod:`.backend`); see :mod:`sonokit.export` for what a graph holds."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..errors import ConfigError


class _LogitsOnly(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out["logits"] if isinstance(out, dict) else out


def partial_graph(model: torch.nn.Module) -> str | None:
    """The note of a model whose ONNX graph computes less than the model (``onnx_module()`` says ``partial``:
    SF-RecSAM with a corrector), else None: inference must then run the model in torch."""
    part = model.onnx_module() if callable(getattr(model, "onnx_module", None)) else None
    return part["note"] if part and part.get("partial") else None


def export_onnx(model: torch.nn.Module, image_size: int, out: str | Path, *, task: str = "segment",
                opset: int = 17) -> str | None:
    """ONNX graph with dynamic batch, height and width (needs the ``onnx`` extra: pip install 'sonokit[onnx]').
    A model with ``onnx_module()`` exports what that returns (module docstring); returns its note, else None."""
    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs the 'onnx' package: pip install 'sonokit[onnx]'") from None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    part = model.onnx_module() if callable(getattr(model, "onnx_module", None)) else None
    net = _LogitsOnly(part["module"] if part else model).eval()
    dynamic = part.get("dynamic_size", True) if part else True
    size = {2: "height", 3: "width"} if dynamic else {}
    x = torch.rand(1, 1, image_size, image_size)
    with warnings.catch_warnings():
        if part:  # the module was written for tracing: its shape-derived constants are meant
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(net, (x,), str(out), input_names=["image"], output_names=["logits"], opset_version=opset,
                          dynamic_axes={"image": {0: "batch", **size},
                                        "logits": {0: "batch", **size} if task in ("segment", "enhance") else {0: "batch"}},
                          dynamo=False)
    note = part.get("note") if part else None
    if note:
        m = onnx.load(str(out))
        onnx.helper.set_model_props(m, {"sonokit_note": note})
        onnx.save(m, str(out))
    return note
