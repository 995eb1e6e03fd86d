"""The static check: which globals a torch file's pickles would import, read without executing anything.

A torch container's pickle (``data.pkl`` of the zip, or the legacy file's leading pickles) is disassembled with
:mod:`pickletools` — which parses opcodes and executes nothing — and every global it names is compared with the
allow-list: torch's own default ``weights_only`` list plus :data:`SAFE_GLOBALS`.
"""
from __future__ import annotations

import _compat_pickle
import io
import pickletools
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ..errors import CheckpointError
from .formats import corrupt_error, open_file

#: Globals allowed in a checkpoint beyond torch's default ``weights_only`` allow-list. Empty: every type in
#: sonokit's own checkpoints (Lightning 2.6, AdamW, LambdaLR, ModelCheckpoint) is on torch's default list.
#: Add a type here only if sonokit itself starts writing it into checkpoints, with a test that loads one.
SAFE_GLOBALS: tuple[Any, ...] = ()

_STRING_OPS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
                         "SHORT_BINUNICODE", "BINUNICODE8"})


def _py3_name(module: str, name: str) -> str:
    """``module.name`` as torch's unpickler resolves it (python-2 names mapped as ``pickle`` does)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _pickle_globals(stream: BinaryIO) -> list[str]:
    """Every global (``module.name``) that the next pickle in ``stream`` would import, in order.

    Read with :func:`pickletools.genops`, which parses opcodes and executes nothing. ``STACK_GLOBAL``
    (protocol >= 4) takes its names from the stack, so a small symbolic stack (strings, memo) is kept; a name
    that cannot be resolved statically is reported as ``<a global named at load time>``. Raises
    ``ValueError`` (or ``EOFError``/``MemoryError``) if the stream is not a complete pickle.
    """
    found: list[str] = []
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}
    for op, arg, _pos in pickletools.genops(stream):
        name = op.name
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found.append(_py3_name(module, attr))
        elif name == "STACK_GLOBAL":
            attr = stack[-1] if stack else None
            module = stack[-2] if len(stack) > 1 else None
            found.append(f"{module}.{attr}" if isinstance(module, str) and isinstance(attr, str)
                         else "<a global named at load time>")
        elif name in ("EXT1", "EXT2", "EXT4"):
            found.append(f"<copyreg extension {arg}>")
        # stack bookkeeping, enough to know which strings STACK_GLOBAL consumes
        if name == "MARK":
            marks.append(len(stack))
            continue
        if name == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else None
            continue
        if name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1] if stack else None
            continue
        if name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(arg))
            continue
        before = op.stack_before
        if pickletools.markobject in before:
            del stack[marks.pop() if marks else 0:]
            n = before.index(pickletools.markobject)
        else:
            n = len(before)
        if n:
            del stack[-n:]
        stack.extend([arg if name in _STRING_OPS else None] * len(op.stack_after))
    return found


def _allowed_globals() -> set[str] | None:
    """Names on torch's default ``weights_only`` list plus :data:`SAFE_GLOBALS` (``None`` if this torch has no
    readable default list; torch's own unpickler is then the only gate)."""
    try:
        from torch import _weights_only_unpickler

        allowed = set(_weights_only_unpickler._get_allowed_globals())
    except Exception:  # noqa: BLE001 - a private torch API; its absence only removes the static check
        return None
    return allowed | {f"{g.__module__}.{g.__qualname__}" for g in SAFE_GLOBALS}


def _torch_pickles(fh: BinaryIO, kind: str) -> list[bytes]:
    """The pickle streams ``torch.load`` would unpickle from the open file ``fh`` (raw bytes, nothing
    executed): ``data.pkl`` of a zip, or the leading pickles of a legacy file (of a plain pickle: the first)."""
    fh.seek(0)
    if kind == "zip":
        try:
            reader = torch._C.PyTorchFileReader(fh)  # the zip reader torch.load itself uses
        except AttributeError:  # pragma: no cover - a torch without the C++ reader binding: every pickle in it
            with zipfile.ZipFile(fh) as z:
                return [z.read(n) for n in z.namelist() if n.endswith(".pkl")]
        records = reader.get_all_records()
        if "constants.pkl" in records or any(r.startswith("code/") for r in records):
            raise _NotACheckpoint("a TorchScript archive (torch.jit.save), not a torch.save checkpoint")
        if "data.pkl" not in records:
            raise _NotACheckpoint("a zip archive without the data.pkl of a torch.save checkpoint")
        return [bytes(reader.get_record("data.pkl"))]
    # legacy: the magic number, protocol version, sys info, the object, the storage keys; then raw storage bytes
    out = []
    for _ in range(1 if kind == "pickle" else 5):
        start = fh.tell()
        for _op in pickletools.genops(fh):  # parses up to STOP; raises on a truncated/corrupt stream
            pass
        end = fh.tell()
        fh.seek(start)
        out.append(fh.read(end - start))
    return out


class _NotACheckpoint(Exception):
    """Internal: the container is readable but is not what torch.load reads (message: what it is)."""


def unsafe_globals(p: Path, kind: str, fh: BinaryIO | None = None) -> list[str]:
    """Globals in ``p``'s pickles that are not allowed (sorted, unique); raises :class:`CheckpointError` if the
    pickles cannot be read statically (truncated or corrupt file). Reads ``fh`` if given (else opens ``p``)."""
    if fh is None:
        with open_file(p) as own:
            return unsafe_globals(p, kind, own)
    try:
        streams = _torch_pickles(fh, kind)
        found: list[str] = []
        for data in streams:
            found += _pickle_globals(io.BytesIO(data))
    except CheckpointError:
        raise
    except _NotACheckpoint as e:
        raise CheckpointError(f"cannot load '{p}': it is {e}; expected a checkpoint or weights file written by "
                              f"torch.save, Lightning or safetensors") from None
    except (ValueError, EOFError, MemoryError, OverflowError, RuntimeError, zipfile.BadZipFile, OSError) as e:
        raise corrupt_error(p, kind, e) from None
    allowed = _allowed_globals()
    if allowed is None:
        return []
    return sorted(set(found) - allowed)
