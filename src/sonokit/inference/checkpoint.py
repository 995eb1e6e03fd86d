"""Reading a trained model back from its training checkpoint: which task it was trained for, its model
record, and its weights — through the safe loader, with an error that says what a file is when it is not
what a command needs.

A sonokit training checkpoint records ``hyper_parameters``: ``task`` (``segment``, ``classify``, ``enhance``,
``pretrain``), ``model`` (the registered name) and ``model_kwargs`` (its factory arguments), the input size
and the data it was trained on. Checkpoints written before ``task`` was recorded are recognised from their
other keys.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError

COMMANDS = {"segment": "sonokit segment / sonokit evaluate", "classify": "sonokit evaluate",
            "enhance": "sonokit enhance", "pretrain": "sonokit train segment --encoder-checkpoint (on its "
            "encoder.safetensors)"}
NAMES = {"segment": "a segmentation model", "classify": "a classification model", "enhance": "an enhancement model",
         "pretrain": "a pretraining run"}


def task_of(hp: dict) -> str | None:
    """The task a checkpoint's hyper-parameters belong to (older checkpoints: inferred from their keys)."""
    if hp.get("task"):
        return str(hp["task"])
    if "degrade" in hp and "patch_size" in hp:
        return "enhance"
    if "method" in hp and ("method_kwargs" in hp or "pretext" in hp):
        return "pretrain"
    if "model" in hp and ("dice_weight" in hp or "image_size" in hp):
        return "segment"
    return None


def read_task_checkpoint(path: str | Path, *, expect: tuple[str, ...] | None = None, trust: bool = False) -> dict:
    """The checkpoint at ``path`` (read with :func:`sonokit.serialization.load_checkpoint`), checked to be a
    sonokit training checkpoint of one of the tasks in ``expect``. Returns the checkpoint dict with
    ``hyper_parameters["task"]`` filled in."""
    from ..serialization import load_checkpoint

    p = Path(path)
    ckpt = load_checkpoint(p, trust=trust)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        found = sorted(ckpt)[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"'{p}' is not a sonokit training checkpoint (expected 'state_dict' and "
                              f"'hyper_parameters'; found {found}); use a .ckpt from the run's checkpoints/ folder")
    hp = dict(ckpt["hyper_parameters"])
    task = task_of(hp)
    if task is None or (task in ("segment", "classify", "enhance") and not isinstance(hp.get("model"), str)):
        raise CheckpointError(f"'{p}' records no model (hyper_parameters.model is missing); it is not a sonokit "
                              f"training checkpoint, or it was edited (found keys {sorted(hp)[:8]})")
    if expect is not None and task not in expect:
        want = " or ".join(NAMES.get(t, t) for t in expect)
        raise CheckpointError(f"'{p}' is {NAMES.get(task, task)} (task '{task}'), but this command needs {want}; "
                              f"use it with `{COMMANDS.get(task, 'the matching command')}`")
    hp["task"] = task
    ckpt["hyper_parameters"] = hp
    return ckpt


def model_weights(ckpt: dict) -> dict:
    """The ``model.*`` tensors of a task checkpoint, without the prefix."""
    return {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}


def build_model(ckpt: dict, path: str | Path, registry=None):
    """The trained model of a task checkpoint, rebuilt from its record (weight-file arguments dropped: the
    weights come from the checkpoint) with its weights loaded; in eval mode on the CPU."""
    from ..registry import Registry

    hp = ckpt["hyper_parameters"]
    if registry is None:
        from ..models import MODELS as registry
    assert isinstance(registry, Registry)
    name = hp["model"]
    kw = registry.rebuild_kwargs(name, dict(hp.get("model_kwargs") or {}))
    try:
        model = registry.create(name, **kw)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint '{path}' records model '{name}' with arguments {kw}, which this "
                              f"version of sonokit cannot build: {e}") from None
    try:
        model.load_state_dict(model_weights(ckpt))
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint '{path}' does not fit model '{name}': {str(e)[:300]}") from None
    return model.eval()


def torch_device(name: str):
    """``torch.device(name)``, checked: an unknown device, or a GPU this machine does not have, is a
    :class:`ConfigError` naming it (instead of a driver error from inside torch)."""
    import torch

    from ..errors import ConfigError

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"--device '{name}' is not a device; expected cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: no CUDA device is available on this machine; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                              f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device '{name}' is not supported; expected cpu, cuda or cuda:N")
    return dev
