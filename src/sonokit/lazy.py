"""PEP 562 lazy attributes for package ``__init__`` files: names are imported from their submodule on first use,
so importing a package (e.g. ``sonokit.data`` for ``sonokit.data.io``) does not load every submodule."""
from __future__ import annotations

import importlib


def lazy_getattr(package: str, names: dict[str, str], namespace: dict):
    """A module ``__getattr__`` for ``package``: ``names`` maps an attribute to its relative submodule (``.io``);
    the value is imported on first use and cached in ``namespace`` (the package's ``globals()``)."""

    def __getattr__(name: str):
        if name in names:
            value = getattr(importlib.import_module(names[name], package), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module '{package}' has no attribute '{name}'")

    return __getattr__
