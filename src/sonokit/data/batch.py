"""Running a command over many inputs (``sonokit segment``, ``sonokit enhance``): a bad input is reported with
its path and the reason and skipped, or, with ``fail_fast``, stops the run; the run ends with one summary line.

An input counts as bad when reading or processing it raises ``ValueError`` (every :class:`DataError`),
``OSError``, ``RuntimeError`` or ``MemoryError``: a corrupt, truncated, empty or unsupported file, NaN pixels,
an image too large for the memory left.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

from ..errors import DataError

T = TypeVar("T")
BAD_INPUT = (ValueError, OSError, RuntimeError, MemoryError)


def reason(path: Path, e: BaseException | str) -> str:
    """The message of ``e``, naming ``path`` when it does not already."""
    msg = str(e) or type(e).__name__
    return msg if str(path) in msg else f"'{path}': {msg}"


@dataclass
class Batch:
    """Counts what was done and what was skipped; ``report`` prints one line per skipped input."""

    fail_fast: bool = False
    report: Callable[[str], None] = print
    done: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def skip(self, path: Path, why: BaseException | str) -> None:
        """Record a bad input; with ``fail_fast`` raise :class:`DataError` instead."""
        msg = reason(path, why)
        if self.fail_fast:
            raise DataError(f"{msg} (stopped at the first bad input: --fail-fast)")
        self.report(f"skipped: {msg}")
        self.skipped.append((Path(path), msg))

    def run(self, path: Path, fn: Callable[[], T], *, count: int = 1) -> T | None:
        """``fn()``, counted as ``count`` done; None (reported and skipped) when it raises for a bad input."""
        try:
            result = fn()
        except BAD_INPUT as e:
            self.skip(path, e)
            return None
        self.done += count
        return result

    @property
    def failed(self) -> bool:
        return bool(self.skipped)

    def summary(self) -> str:
        """``done N, skipped M (see above)``."""
        return f"done {self.done}, skipped {len(self.skipped)}" + (" (see above)" if self.skipped else "")
