"""The organ given to anatomy-conditioned models (A-ViT encoders) at inference.

A model reads the organ when its ``batch_inputs`` holds ``organ``; inference gives it the index of a name in
the vocabulary the model was trained with (the checkpoint's ``data.organs``, else sonokit's default), the
same for every image of a call. Without one the model predicts the organ itself (A-ViT's organ head)."""
from __future__ import annotations

import torch

from ..errors import ConfigError


def organ_vocab(hparams: dict) -> tuple[str, ...]:
    from ..data.organs import organ_vocabulary

    return organ_vocabulary((hparams.get("data") or {}).get("organs"))


def resolve_organ(name: str | None, hparams: dict, model: torch.nn.Module) -> int | None:
    """The vocabulary index of ``name`` (None: None); a name outside the vocabulary is an error listing it,
    and so is an organ for a model that does not read one."""
    if name is None:
        return None
    vocab = organ_vocab(hparams)
    if name not in vocab:
        raise ConfigError(f"organ '{name}' is not in this model's organ vocabulary; known organs: {', '.join(vocab)}")
    if "organ" not in tuple(getattr(model, "batch_inputs", ())):
        raise ConfigError(f"organ '{name}' given, but this model ({type(model).__name__}) does not read the organ; "
                          "only anatomy-conditioned encoders (avit_*) do")
    return vocab.index(name)


def call_model(model: torch.nn.Module, x: torch.Tensor, organ: int | None):
    """``model(x)``, with ``organ`` (B,) when one is set."""
    if organ is None:
        return model(x)
    return model(x, organ=torch.full((x.shape[0],), int(organ), dtype=torch.long, device=x.device))
