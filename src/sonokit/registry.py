"""One small registry class shared by models, encoders, decoders, losses, dataset formats, SSL methods, ...

Variants are data: a registered factory per variant, ``create(name, **kw)`` and ``list("res*")``, with a
"did you mean" error for unknown names (timm's ``@register_model`` pattern). A factory's keyword arguments
are its config: :meth:`Registry.check_kwargs` validates a config section ``{name: ..., **kwargs}`` against
the factory's signature, so a misspelt key is an error that names the factory's parameters, and no generic
code needs to know which keys a particular model takes.

This module imports nothing heavy (no torch), so configs can be checked before a model is built.
"""
from __future__ import annotations

import difflib
import fnmatch
import inspect
from typing import Any, Callable, Generic, Iterable, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


class Registry(Generic[T]):
    """Maps names to factories.

    >>> MODELS = Registry("model")
    >>> @MODELS.register("tiny")
    ... def tiny(*, width: int = 8): return {"width": width}
    >>> MODELS.create("tiny", width=4)
    {'width': 4}
    >>> MODELS.check_kwargs("tiny", {"widht": 4})
    Traceback (most recent call last):
    ...
    sonokit.errors.ConfigError: unknown key 'widht' for model 'tiny'; did you mean 'width'? its parameters: width

    ``init_only`` names keyword arguments that only initialise weights (files to load, e.g.
    ``encoder_weights``): :meth:`rebuild_kwargs` drops them when a trained model is rebuilt from a
    checkpoint that already holds all its weights.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._init_only: dict[str, tuple[str, ...]] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str | None = None, *, init_only: Iterable[str] = (),
                 help: str | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            key = name or fn.__name__
            if key in self._factories:
                raise ConfigError(f"{self.kind} '{key}' is registered twice")
            self._factories[key] = fn
            self._init_only[key] = tuple(init_only)
            self._help[key] = help or _first_line(fn)
            return fn

        return deco

    def get(self, name: str) -> Callable[..., T]:
        if not isinstance(name, str) or name not in self._factories:
            raise ConfigError(self.unknown_message(name))
        return self._factories[name]

    def create(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def list(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._factories if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def summary(self, name: str) -> str:
        """The first line of the factory's docstring (for ``sonokit models``)."""
        self.get(name)
        return self._help.get(name, "")

    def unknown_message(self, name: object) -> str:
        names = self.list()
        return f"unknown {self.kind} '{name}'{did_you_mean(str(name), names)} available: {', '.join(names)}"

    # -- signatures --------------------------------------------------------------------------------------
    def parameters(self, name: str) -> tuple[list[str], bool]:
        """``(keyword parameter names, accepts **kwargs)`` of the factory ``name``."""
        sig = inspect.signature(self.get(name))
        names = [p.name for p in sig.parameters.values()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        var = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
        return names, var

    def accepts(self, name: str, key: str) -> bool:
        names, var = self.parameters(name)
        return key in names or var

    def check_kwargs(self, name: str, kwargs: dict, where: str = "") -> None:
        """Raise :class:`ConfigError` for keys the factory ``name`` does not take, or required ones missing.

        ``where`` prefixes the key in the message (``"model."`` gives ``unknown key 'model.x'``)."""
        fn = self.get(name)
        names, var = self.parameters(name)
        if not var:
            for key in kwargs:
                if key not in names:
                    raise ConfigError(f"unknown key '{where}{key}' for {self.kind} '{name}'{did_you_mean(key, names)} "
                                      f"its parameters: {', '.join(names) or '(none)'}")
        sig = inspect.signature(fn)
        missing = [p.name for p in sig.parameters.values() if p.default is p.empty
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in kwargs]
        if missing:
            raise ConfigError(f"{self.kind} '{name}' needs {', '.join(f'{where}{m}' for m in missing)}; "
                              f"its parameters: {', '.join(names)}")

    def rebuild_kwargs(self, name: str, kwargs: dict) -> dict:
        """``kwargs`` without the factory's ``init_only`` arguments (weights files): what rebuilds a trained
        model whose weights all come from its checkpoint."""
        self.get(name)
        drop = set(self._init_only.get(name, ()))
        return {k: v for k, v in kwargs.items() if k not in drop}


def _first_line(fn) -> str:
    """The first line of ``fn``'s own docstring (a class's, not an inherited one), else of its module's."""
    doc = fn.__doc__ if isinstance(fn, type) else inspect.getdoc(fn)
    if not doc and isinstance(fn, type):
        doc = getattr(inspect.getmodule(fn), "__doc__", None)
    doc = (doc or "").strip()
    return doc.splitlines()[0] if doc else ""


def split_spec(spec: Any, kind: str, where: str) -> tuple[str, dict]:
    """``{name: x, **kwargs}`` (or a bare name) -> ``(name, kwargs)``, with a clear error otherwise."""
    if isinstance(spec, str):
        return spec, {}
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ConfigError(f"{where} must be a mapping with a '{kind}' name, e.g. {{name: ...}}; found {spec!r}")
    kw = {k: v for k, v in spec.items() if k != "name"}
    return spec["name"], kw
