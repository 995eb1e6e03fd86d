"""Which parameters train, and with which learning rate: freeze / unfreeze patterns and parameter groups.

Patterns are ``fnmatch`` globs on the names of ``model.named_parameters()`` (e.g. ``encoder.*``,
``*adapter*``, ``*.bias``). ``freeze`` turns ``requires_grad`` off; ``unfreeze`` turns it back on for
names that also match a freeze pattern (freeze ``encoder.*`` but train ``*adapter*``). A pattern that
matches no parameter is an error: it is almost always a typo, and a silently unfrozen SAM encoder costs a
day of GPU time. A pattern written ``optional:PATTERN`` may match nothing (a module that only some settings
of a model have, e.g. ``optional:*fusion*`` in a config whose rows switch the fusion off). Groups assign a
learning rate / weight decay to the first group whose patterns match; every other trainable parameter goes to
the default group.
"""
from __future__ import annotations

import fnmatch
from typing import Iterable

from torch import nn

from ..errors import ConfigError

OPTIONAL = "optional:"  # prefix of a pattern that may match no parameter


def _glob(pattern: str) -> str:
    return pattern[len(OPTIONAL):] if pattern.startswith(OPTIONAL) else pattern


def _match(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, _glob(p)) for p in patterns)


def _check_patterns(names: list[str], patterns: Iterable[str], where: str) -> None:
    for p in patterns:
        if p.startswith(OPTIONAL):
            if not _glob(p):
                raise ConfigError(f"{where} pattern '{p}' has nothing after '{OPTIONAL}'; e.g. '{OPTIONAL}*fusion*'")
            continue
        if not any(fnmatch.fnmatchcase(n, p) for n in names):
            tops = sorted({n.split(".")[0] for n in names})
            raise ConfigError(f"{where} pattern '{p}' matches no parameter of the model; its top-level modules "
                              f"are {', '.join(tops)} (e.g. '{names[0] if names else '?'}'); patterns are "
                              "fnmatch globs on parameter names such as 'encoder.*' ('optional:PATTERN' may "
                              "match nothing)")


def apply_freeze(model: nn.Module, freeze: Iterable[str] = (), unfreeze: Iterable[str] = ()) -> dict:
    """Set ``requires_grad`` from the patterns; returns ``{"trainable": n, "total": n, "frozen_tensors": k}``."""
    freeze, unfreeze = list(freeze or ()), list(unfreeze or ())
    names = [n for n, _ in model.named_parameters()]
    _check_patterns(names, freeze, "optim.freeze")
    _check_patterns(names, unfreeze, "optim.unfreeze")
    frozen = 0
    for n, p in model.named_parameters():
        if freeze and _match(n, freeze) and not _match(n, unfreeze):
            p.requires_grad_(False)
            frozen += 1
    return count_parameters(model) | {"frozen_tensors": frozen}


def count_parameters(model: nn.Module) -> dict:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": int(trainable), "total": int(total)}


def frozen_modules(model: nn.Module) -> list[nn.Module]:
    """Modules with parameters, all of them frozen: these stay in eval mode while training, so a frozen
    encoder's BatchNorm statistics and dropout do not change (a linear probe sees a fixed feature map)."""
    out = []
    for m in model.modules():
        ps = list(m.parameters(recurse=False))
        if ps and not any(p.requires_grad for p in ps):
            out.append(m)
    return out


def param_groups(model: nn.Module, *, lr: float, weight_decay: float, groups: Iterable = ()) -> list[dict]:
    """AdamW parameter groups: one per configured group (first match wins), then the default group.

    ``groups`` items have ``params`` (patterns), ``lr`` and ``weight_decay`` (None: the defaults); they may
    be dataclasses or dicts. Frozen parameters are left out. Empty groups are dropped. The default group
    keeps the model's parameter order, so a config without groups gives exactly one group, as before.
    """
    specs = []
    for i, g in enumerate(groups or ()):
        get = g.get if isinstance(g, dict) else lambda k, g=g: getattr(g, k)
        pats = get("params")
        pats = [pats] if isinstance(pats, str) else list(pats or [])
        if not pats:
            raise ConfigError(f"optim.groups[{i}] has no params patterns")
        specs.append({"patterns": pats, "lr": get("lr"), "weight_decay": get("weight_decay")})
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    _check_patterns([n for n, _ in model.named_parameters()], [p for s in specs for p in s["patterns"]],
                    "optim.groups")
    buckets: list[list] = [[] for _ in specs]
    rest = []
    for n, p in named:
        k = next((i for i, s in enumerate(specs) if _match(n, s["patterns"])), None)
        (rest if k is None else buckets[k]).append(p)
    out = []
    for s, ps in zip(specs, buckets):
        if ps:
            out.append({"params": ps, "lr": lr if s["lr"] is None else s["lr"],
                        "weight_decay": weight_decay if s["weight_decay"] is None else s["weight_decay"]})
    if rest:
        out.append({"params": rest, "lr": lr, "weight_decay": weight_decay})
    if not out:
        raise ConfigError("no parameter is left to train: optim.freeze froze the whole model; "
                          "use optim.unfreeze to keep some trainable")
    return out
