"""sonokit's error types. Every message says what was expected, what was found, and where."""
from __future__ import annotations

from pathlib import Path


class SonokitError(Exception):
    """Base class of all errors sonokit raises on purpose."""


class DataError(SonokitError, ValueError):
    """A file or folder cannot be used as data: unreadable, wrong layout, wrong size, ..."""


class ConfigError(SonokitError, ValueError):
    """A configuration value or option is unknown or out of range."""


class CheckpointError(SonokitError, ValueError):
    """A checkpoint or weights file cannot be loaded into the requested model."""


class WriteError(SonokitError, OSError):
    """A result, checkpoint or image could not be written (disk full, read-only folder, ...); the previous
    version of the file, if any, is kept (every sonokit write is atomic)."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint or weights file was refused because loading it would execute code from the file
    (raised by :mod:`sonokit.serialization`; defined here so that catching it needs no torch).

    Attributes:
        path: the file.
        globals: the functions/classes its pickle would import (``module.name``, as torch spells them).
    """

    def __init__(self, message: str, path: Path | None = None, globals: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.path = path
        self.globals = list(globals)

    def __reduce__(self):  # picklable (e.g. across DataLoader workers) with its attributes
        return type(self), (self.args[0], self.path, self.globals)


#: Help text of the command line's ``--trust-checkpoint`` (here, not in ``sonokit.serialization``, so that the
#: CLI's option definitions need no torch). What trusting a file means: :func:`sonokit.serialization.load_checkpoint`.
TRUST_HELP = ("dangerous: load checkpoint/weights files even if they hold pickled Python objects other than "
              "tensors and plain data, which executes code from the file (sonokit's own files never hold such "
              "objects) — use only for files you made yourself or fully trust")
