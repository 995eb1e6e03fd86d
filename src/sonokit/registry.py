"""One small registry class shared by models, encoders, dataset formats and (later) SSL methods.

Variants are data: a registered factory per variant, ``create(name, **kw)`` and ``list("res*")``,
with a "did you mean" error for unknown names (timm's ``@register_model`` pattern).
"""
from __future__ import annotations

import difflib
import fnmatch
from typing import Any, Callable, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories.

    >>> MODELS = Registry("model")
    >>> @MODELS.register("tiny")
    ... def tiny(**kw): return dict(kw)
    >>> MODELS.create("tiny", a=1)
    {'a': 1}
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            key = name or fn.__name__
            if key in self._factories:
                raise ConfigError(f"{self.kind} '{key}' is registered twice")
            self._factories[key] = fn
            return fn

        return deco

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._factories:
            raise ConfigError(self.unknown_message(name))
        return self._factories[name]

    def create(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def list(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._factories if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def unknown_message(self, name: str) -> str:
        names = self.list()
        close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown {self.kind} '{name}'{hint} available: {', '.join(names)}"
