"""What a file is, from its first bytes (never its name), and the messages that say so.

:func:`detect_format` tells a torch zip archive, a legacy torch pickle, a plain pickle, safetensors, a Git LFS
pointer, an empty file and anything else apart; the helpers here turn a missing, unreadable, empty, truncated or
unknown file into a :class:`~sonokit.errors.CheckpointError` that says what was expected and what was found.
:func:`read_safetensors` is the one place sonokit reads a safetensors file (nothing in one is unpickled).
"""
from __future__ import annotations

import json
import pickletools
import struct
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..errors import CheckpointError

if TYPE_CHECKING:
    import torch

# the torch legacy (pre-1.6, or _use_new_zipfile_serialization=False) format starts with this number pickled
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_ZIP_HEADERS = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive
_MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors library's own limit

#: each :func:`detect_format` kind in words, for messages
KIND_TEXT = {
    "zip": "a torch zip archive (torch.save / Lightning checkpoint)",
    "torch-legacy": "a legacy torch pickle (torch.save with the pre-1.6 format)",
    "pickle": "a plain Python pickle (not written by torch.save)",
    "safetensors": "a safetensors file",
    "lfs-pointer": "a Git LFS pointer (a small text file that stands in for the real file)",
    "empty": "an empty file",
    "unknown": "an unknown format",
}

# ------------------------------------------------------------------------------------------------- sniffing

def detect_format(path: str | Path) -> str:
    """The container of ``path`` from its first bytes (never its name): ``"zip"``, ``"torch-legacy"``,
    ``"pickle"``, ``"safetensors"``, ``"lfs-pointer"``, ``"empty"`` or ``"unknown"``.

    Raises :class:`CheckpointError` if ``path`` is missing, a folder, or unreadable. Reads at most the first
    pickle of a pickle file (statically, executing nothing) and the first 64 bytes of anything else.
    """
    p = existing_file(Path(path), "file", "a checkpoint or weights file")
    with open_file(p) as fh:
        head = fh.read(64)
        if not head:
            return "empty"
        if head[:4] in _ZIP_HEADERS:
            return "zip"
        if len(head) >= 9:
            (n,) = struct.unpack("<Q", head[:8])
            if 2 <= n <= _MAX_SAFETENSORS_HEADER and head[8:9] == b"{":
                return "safetensors"
        if head.startswith(b"version https://git-lfs"):
            return "lfs-pointer"
        if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:  # PROTO 2-5
            fh.seek(0)
            return "torch-legacy" if _first_pickle_is_torch_magic(fh) else "pickle"
    return "unknown"


def _first_pickle_is_torch_magic(fh: BinaryIO) -> bool:
    try:
        ops = [(op.name, arg) for op, arg, _ in pickletools.genops(fh)]
    except Exception:  # noqa: BLE001 - any parse failure means "not torch's magic number"
        return False
    values = [arg for name, arg in ops if name not in ("PROTO", "FRAME", "STOP")]
    return values == [_TORCH_MAGIC]


# --------------------------------------------------------------------------------- files and messages

def existing_file(p: Path, what: str, expected: str) -> Path:
    """``p`` if it is an existing regular file; else a :class:`CheckpointError` saying ``what`` ``p`` is (missing,
    a folder, not a regular file), that ``expected`` was expected, and which checkpoint files lie nearby."""
    if not p.exists():
        hint = ""
        if p.parent.is_dir():
            near = sorted(x.name for x in p.parent.iterdir()
                          if x.suffix in (".ckpt", ".pt", ".pth", ".bin", ".safetensors"))[:5]
            if near:
                hint = f" ({p.parent} holds: {', '.join(near)})"
        raise CheckpointError(f"{what} '{p}' does not exist; expected {expected}{hint}")
    if p.is_dir():
        cands = [c for c in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "encoder.safetensors",
                             "best.ckpt", "last.ckpt") if (p / c).is_file()]
        hint = f"; did you mean {', '.join(str(p / c) for c in cands)}?" if cands else ""
        raise CheckpointError(f"{what} '{p}' is a folder; expected {expected}{hint}")
    if not p.is_file():
        raise CheckpointError(f"{what} '{p}' is not a regular file; expected {expected}")
    return p


def open_file(p: Path) -> BinaryIO:
    """``p`` opened for binary reading; an OS error becomes a :class:`CheckpointError` naming the file."""
    try:
        return open(p, "rb")
    except OSError as e:
        raise CheckpointError(f"cannot open '{p}': {e.strerror or e}; expected a readable file") from None


def _size(p: Path) -> str:
    n = p.stat().st_size
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"  # pragma: no cover


def error_reason(err: BaseException) -> str:
    """The first sentence of an error from inside torch/safetensors/pickletools, for a one-line message."""
    text = " ".join(str(err).split())
    return (text.split(". ")[0][:200] if text else type(err).__name__).rstrip(".")


def corrupt_error(p: Path, kind: str, err: BaseException) -> CheckpointError:
    """The error for a file whose first bytes say ``kind`` (a :func:`detect_format` kind) but that ``err``
    shows to be truncated or corrupt: what it is, its size, the reason, and what to do."""
    reason = error_reason(err)
    return CheckpointError(
        f"cannot read '{p}': its first bytes say {KIND_TEXT[kind]}, but the file ({_size(p)}) is incomplete "
        f"or corrupt ({reason}); expected a complete file as torch.save/Lightning write it. Was a copy or "
        f"download interrupted? Copy the file again, or use the run's other checkpoint (best.ckpt/last.ckpt)")


def not_torch_error(p: Path, kind: str, expected: str) -> CheckpointError:
    """The error for a file of ``kind`` (``empty``, ``lfs-pointer`` or ``unknown``) that holds no checkpoint,
    saying that ``expected`` was expected and how to get the real file."""
    if kind == "empty":
        return CheckpointError(f"'{p}' is an empty file (0 bytes); expected {expected}. Was a copy or download "
                               f"interrupted? Copy the file again")
    if kind == "lfs-pointer":
        return CheckpointError(f"'{p}' is {KIND_TEXT['lfs-pointer']}; expected {expected}. Fetch the real file "
                               f"with `git lfs pull`")
    with open_file(p) as fh:
        head = fh.read(16)
    return CheckpointError(f"'{p}' is not a checkpoint: its first bytes {head!r} match no known format; expected "
                           f"{expected} (a zip archive starts with b'PK', safetensors with an 8-byte header length "
                           f"and '{{')")


def safetensors_header_problem(p: Path, kind: str) -> str:
    """Why ``p``, of :func:`detect_format` kind ``kind``, is not a safetensors file, as a clause for a message
    (``"it is an empty file (0 bytes)"``, a header length past the end of the file, ...)."""
    size = p.stat().st_size
    if kind == "empty":
        return "it is an empty file (0 bytes)"
    with open_file(p) as fh:
        head = fh.read(9)
    if len(head) < 8:
        return f"it is only {size} bytes long, shorter than the 8-byte header length"
    (n,) = struct.unpack("<Q", head[:8])
    if n > _MAX_SAFETENSORS_HEADER or n + 8 > size:
        return f"its first 8 bytes declare a {n}-byte header but the file is {size} bytes"
    return f"its header does not start with '{{' (found {head[8:9]!r})"


def read_safetensors(p: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file, on the CPU (nothing is unpickled); a file safetensors
    cannot read raises :class:`CheckpointError` naming it and its size."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(p), framework="pt", device="cpu") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError, json.JSONDecodeError) as e:
        reason = error_reason(e)
        raise CheckpointError(
            f"weights file '{p}' is not a valid safetensors file ({_size(p)}): {reason}; expected a complete "
            f"file as safetensors' save_file writes it. Is it truncated or corrupt? Copy or export it again") from None
    return tensors, meta
