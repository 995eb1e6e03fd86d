"""sonokit's error types. Every message says what was expected, what was found, and where."""
from __future__ import annotations


class SonokitError(Exception):
    """Base class of all errors sonokit raises on purpose."""


class DataError(SonokitError, ValueError):
    """A file or folder cannot be used as data: unreadable, wrong layout, wrong size, ..."""


class ConfigError(SonokitError, ValueError):
    """A configuration value or option is unknown or out of range."""


class CheckpointError(SonokitError, ValueError):
    """A checkpoint or weights file cannot be loaded into the requested model."""
