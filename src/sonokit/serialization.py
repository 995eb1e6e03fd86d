"""Reading checkpoint and weights files without running code from them.

A ``.ckpt`` / ``.pt`` / ``.pth`` file written by ``torch.save`` (and so by Lightning) is a *pickle*: loading it
with ``torch.load(weights_only=False)`` rebuilds whatever Python objects it names, and a crafted file names
functions (``os.system``, ``pathlib.Path.touch``, ...) that run the moment it is opened — before any check of
its keys or shapes. Every sonokit entry point that reads a checkpoint or weights file goes through the two
functions here:

* :func:`load_checkpoint` — a Lightning/torch training checkpoint (``best.ckpt``, ``last.ckpt``) as a dict.
* :func:`load_weights` — a model's or encoder's weights: ``(state_dict, metadata)`` from a safetensors file
  or a torch file.

What is read, and in which order:

1. The container is recognised from the file's **first bytes, never from its name**: a zip archive (the torch
   >= 1.6 format), a legacy torch pickle (the torch magic number as its first pickle), a plain Python pickle,
   or safetensors (an 8-byte little-endian header length, then a JSON header). Missing files, folders, empty
   files, Git LFS pointers and unknown formats are reported as :class:`CheckpointError` saying what was
   expected and what was found.
2. A torch container's pickle (``data.pkl`` of the zip, or the legacy file's pickles) is disassembled with
   :mod:`pickletools` — which parses opcodes and executes nothing — and every global it would import is
   compared with the allow-list: torch's own default ``weights_only`` list (tensors, storages, dtypes,
   ``OrderedDict``, ...) plus :data:`SAFE_GLOBALS`. Any other global means :class:`UnsafeCheckpointError`,
   raised before ``torch.load`` is called at all. Globals other libraries add process-wide with
   ``torch.serialization.add_safe_globals`` (MONAI adds its ``MetaTensor`` on import) do not widen this check.
3. The file is then read by ``torch.load(file, map_location="cpu", weights_only=True)`` inside
   ``torch.serialization.safe_globals(SAFE_GLOBALS)``: torch's restricted unpickler is the second, independent
   gate. Its errors are turned into :class:`CheckpointError` (never a traceback from inside torch).
4. Only with ``trust=True`` (``--trust-checkpoint`` on the command line) is a file that fails the checks read
   with ``weights_only=False`` — which **executes code from the file** — and a warning is logged. Use it only
   for files you made yourself or whose source you fully trust.

Safetensors files hold raw tensors and a JSON header only; they are read with the ``safetensors`` library and
never unpickled. A file *named* ``.safetensors`` whose bytes are a pickle is refused outright, even with
``trust=True``, by both functions: rename it to ``.pt`` if you trust it.

What sonokit's own checkpoints contain (checked on ``sonokit train segment``, ``sonokit pretrain`` and
``sonokit train enhance`` runs, Lightning 2.6 / torch 2.14): ``epoch``, ``global_step``, ``state_dict``,
``loops``, ``callbacks`` (ModelCheckpoint state), ``optimizer_states`` (AdamW), ``lr_schedulers``
(LambdaLR), ``hparams_name``, ``hyper_parameters`` — nested dicts, lists, tuples, strings, numbers, None and
tensors, whose only globals are ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and
``torch.{Float,Long,Bool}Storage``, all on torch's default list. :data:`SAFE_GLOBALS` is therefore empty; a
type added to it must be one that sonokit itself writes into checkpoints.
"""
from __future__ import annotations

import _compat_pickle
import io
import json
import logging
import pickle
import pickletools
import re
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch

from .errors import CheckpointError

__all__ = [
    "SAFE_GLOBALS",
    "TRUST_HELP",
    "UnsafeCheckpointError",
    "detect_format",
    "load_checkpoint",
    "load_weights",
]

log = logging.getLogger(__name__)

#: Globals allowed in a checkpoint beyond torch's default ``weights_only`` allow-list. Empty: every type in
#: sonokit's own checkpoints (Lightning 2.6, AdamW, LambdaLR, ModelCheckpoint) is on torch's default list.
#: Add a type here only if sonokit itself starts writing it into checkpoints, with a test that loads one.
SAFE_GLOBALS: tuple[Any, ...] = ()

#: Help text for the CLI's ``--trust-checkpoint`` option.
TRUST_HELP = ("dangerous: load checkpoint/weights files even if they hold pickled Python objects other than "
              "tensors and plain data, which executes code from the file — use only for files you made "
              "yourself or fully trust")

_TRUST_HINT = ("If you made this file yourself or fully trust its source, load it anyway with --trust-checkpoint "
               "on the command line or trust=True in Python (dangerous: a malicious file then runs any code it "
               "holds, with your permissions).")

# the torch legacy (pre-1.6, or _use_new_zipfile_serialization=False) format starts with this number pickled
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_ZIP_HEADERS = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive
_MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors library's own limit
_STRING_OPS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
                         "SHORT_BINUNICODE", "BINUNICODE8"})

_KIND_TEXT = {
    "zip": "a torch zip archive (torch.save / Lightning checkpoint)",
    "torch-legacy": "a legacy torch pickle (torch.save with the pre-1.6 format)",
    "pickle": "a plain Python pickle (not written by torch.save)",
    "safetensors": "a safetensors file",
    "lfs-pointer": "a Git LFS pointer (a small text file that stands in for the real file)",
    "empty": "an empty file",
    "unknown": "an unknown format",
}


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint or weights file was refused because loading it would execute code from the file.

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


# ------------------------------------------------------------------------------------------------- sniffing

def detect_format(path: str | Path) -> str:
    """The container of ``path`` from its first bytes (never its name): ``"zip"``, ``"torch-legacy"``,
    ``"pickle"``, ``"safetensors"``, ``"lfs-pointer"``, ``"empty"`` or ``"unknown"``.

    Raises :class:`CheckpointError` if ``path`` is missing, a folder, or unreadable. Reads at most the first
    pickle of a pickle file (statically, executing nothing) and the first 64 bytes of anything else.
    """
    p = _existing_file(Path(path), "file", "a checkpoint or weights file")
    with _open(p) as fh:
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


# ------------------------------------------------------------------------------------------ static scanning

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


def _unsafe_globals(p: Path, kind: str, fh: BinaryIO | None = None) -> list[str]:
    """Globals in ``p``'s pickles that are not allowed (sorted, unique); raises :class:`CheckpointError` if the
    pickles cannot be read statically (truncated or corrupt file). Reads ``fh`` if given (else opens ``p``)."""
    if fh is None:
        with _open(p) as own:
            return _unsafe_globals(p, kind, own)
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
        raise _corrupt(p, kind, e) from None
    allowed = _allowed_globals()
    if allowed is None:
        return []
    return sorted(set(found) - allowed)


# ---------------------------------------------------------------------------------------------- torch files

def _existing_file(p: Path, what: str, expected: str) -> Path:
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


def _open(p: Path) -> BinaryIO:
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


def _reason(err: BaseException) -> str:
    """The first sentence of an error from inside torch/safetensors/pickletools, for a one-line message."""
    text = " ".join(str(err).split())
    return (text.split(". ")[0][:200] if text else type(err).__name__).rstrip(".")


def _corrupt(p: Path, kind: str, err: BaseException) -> CheckpointError:
    reason = _reason(err)
    return CheckpointError(
        f"cannot read '{p}': its first bytes say {_KIND_TEXT[kind]}, but the file ({_size(p)}) is incomplete "
        f"or corrupt ({reason}); expected a complete file as torch.save/Lightning write it. Was a copy or "
        f"download interrupted? Copy the file again, or use the run's other checkpoint (best.ckpt/last.ckpt)")


def _refuse(p: Path, what: str, unsafe: list[str], *, trust_helps: bool = True,
            extra: str = "") -> UnsafeCheckpointError:
    names = ", ".join(unsafe) if unsafe else "objects torch's safe loader does not allow"
    msg = (f"refusing to load {what} '{p}': its pickle would import {names}. sonokit never writes such types "
           f"(its checkpoints hold only tensors, numbers, strings, lists and dicts), and loading them would "
           f"execute code from the file.{extra} ")
    msg += _TRUST_HINT if trust_helps else ""
    return UnsafeCheckpointError(msg.strip(), path=p, globals=list(unsafe))


def _trusted_load(p: Path, fh: BinaryIO, what: str, unsafe: list[str]) -> Any:
    log.warning("loading %s '%s' with trust=True (--trust-checkpoint): unpickling it may execute code from the "
                "file%s", what, p, f" (it imports {', '.join(unsafe)})" if unsafe else "")
    fh.seek(0)
    try:
        return torch.load(fh, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any failure inside torch becomes one clear error
        raise CheckpointError(f"cannot read {what} '{p}' even with trust=True: {_reason(e)}; expected "
                              f"a complete file written by torch.save/Lightning") from None


def _weights_only_refusal(e: pickle.UnpicklingError) -> tuple[list[str], str, bool]:
    """From torch's ``weights_only`` error: the globals it names, its one-line reason, and whether the reason is
    a type it will not build (rather than an opcode it cannot parse)."""
    text = str(e)
    named = re.findall(r"GLOBAL (\S+) was not an allowed global", text)
    after = text.split("WeightsUnpickler error:", 1)[-1].split("Check the documentation of torch.load")[0]
    detail = (" ".join(after.split()) or type(e).__name__)[:300].rstrip(".")
    about_types = bool(named) or any(w in detail.lower() for w in ("global", "class", "reduce", "instantiate",
                                                                    "allowlist", "build"))
    return named, detail, about_types


def _load_torch(p: Path, kind: str, what: str, trust: bool) -> Any:
    """Steps 2-4 of the module docstring for a zip or legacy torch file.

    The file is opened once; the scan and ``torch.load`` read the same open file (so a file swapped in between
    is not what gets loaded), and ``torch.load`` gets the file object, not the path, because torch (2.14 here)
    picks its reader from a path's suffix (``.safetensors``) where sonokit goes by the bytes.
    """
    with _open(p) as fh:
        unsafe = _unsafe_globals(p, kind, fh)
        if unsafe:
            if not trust:
                raise _refuse(p, what, unsafe)
            return _trusted_load(p, fh, what, unsafe)
        fh.seek(0)
        try:
            with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
                return torch.load(fh, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:  # torch's restricted unpickler refused what the scan let through
            named, detail, about_types = _weights_only_refusal(e)
            if trust:
                return _trusted_load(p, fh, what, named)
            if about_types:
                raise _refuse(p, what, named, extra=f" (torch's safe loader: {detail})") from None
            raise CheckpointError(
                f"cannot read {what} '{p}' safely: torch's restricted (weights_only) reader stopped at {detail!r}, "
                f"although the types it names are all allowed; expected a file as torch.save writes it with its "
                f"default pickle protocol 2 (a file saved with pickle_protocol=4 or later is read only by the full "
                f"unpickler). Save it again with torch.save's defaults; or, if you made it yourself or fully trust "
                f"its source, load it with --trust-checkpoint / trust=True (dangerous: that runs any code it "
                f"holds)") from None
        except Exception as e:  # noqa: BLE001 - any failure inside torch becomes one clear error
            raise _corrupt(p, kind, e) from None


# --------------------------------------------------------------------------------------------- public API

def load_checkpoint(path: str | Path, *, trust: bool = False) -> dict:
    """Read a Lightning/torch training checkpoint (``best.ckpt``, ``last.ckpt``) onto the CPU, safely.

    The container is recognised from the file's first bytes (zip or legacy torch pickle), never from its name
    (the one use of the name: a pickle named ``.safetensors`` is refused, even with ``trust=True``, since that
    name promises a file that cannot hold code); the file is read
    with ``torch.load(weights_only=True)`` after a static check that its pickle imports nothing beyond torch's
    default allow-list and :data:`SAFE_GLOBALS` (see the module docstring). Returns the checkpoint dict as
    saved; callers check the keys they need (``state_dict``, ``hyper_parameters``, ...).

    Args:
        path: the checkpoint file (any name: ``.ckpt``, ``.pt``, ...).
        trust: **dangerous.** If the file holds other objects, load it anyway with ``weights_only=False``,
            which executes code from the file (a warning is logged). Only for files you made or fully trust.

    Raises:
        UnsafeCheckpointError: the file would import other globals (names them); nothing was executed.
        CheckpointError: missing, a folder, empty, truncated/corrupt, a safetensors or other non-checkpoint
            file, or a checkpoint that is not a dict.
    """
    p = _existing_file(Path(path), "checkpoint", "a Lightning/torch checkpoint file (.ckpt)")
    kind = detect_format(p)
    if kind == "safetensors":
        raise CheckpointError(
            f"'{p}' is a safetensors weights file, not a training checkpoint; expected a Lightning checkpoint "
            f"(a torch zip archive such as RUN/checkpoints/best.ckpt). Safetensors files hold weights only: use "
            f"them where weights are expected (e.g. --encoder-checkpoint, model.encoder_checkpoint)")
    if p.suffix.lower() == ".safetensors" and kind in ("zip", "torch-legacy", "pickle"):
        raise _disguised_pickle(p, kind, "checkpoint")
    if kind in ("pickle", "unknown"):
        _refuse_foreign(p, kind, "checkpoint")
    if kind in ("empty", "lfs-pointer", "unknown"):
        raise _not_torch(p, kind, "a Lightning/torch checkpoint (a zip archive written by torch.save)")
    obj = _load_torch(p, kind, "checkpoint", trust)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint '{p}' holds a {type(obj).__name__}; expected a dict as Lightning "
                              f"saves it (state_dict, hyper_parameters, ...)")
    return obj if isinstance(obj, dict) else dict(obj)


def load_weights(path: str | Path, *, trust: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a model's or encoder's weights onto the CPU, safely: ``(state_dict, metadata)``.

    * safetensors (recognised from the bytes, whatever the name): the tensors and the header's string
      metadata (``{}`` if none), read with the ``safetensors`` library — nothing is unpickled.
    * a torch file (zip or legacy, any name but ``.safetensors``): read as :func:`load_checkpoint` does; the
      dict it holds is returned as is (it may wrap the weights, e.g. ``{"state_dict": ...}`` or
      ``{"encoder": ...}``; callers unwrap) with ``{}`` metadata.

    A file named ``.safetensors`` whose bytes are not safetensors is refused without being unpickled, even
    with ``trust=True`` (rename a trusted torch file to ``.pt``).

    Args:
        path: the weights file.
        trust: **dangerous**, torch files only: as in :func:`load_checkpoint`.

    Raises:
        UnsafeCheckpointError: a torch file that would import other globals, or a pickle named
            ``.safetensors``; nothing was executed.
        CheckpointError: missing, a folder, empty, truncated/corrupt, a bad safetensors header, ...
    """
    p = _existing_file(Path(path), "weights file", "a .safetensors or torch (.pt/.pth/.ckpt) weights file")
    kind = detect_format(p)
    if kind == "safetensors":
        return _read_safetensors(p)
    if p.suffix.lower() == ".safetensors":
        if kind in ("zip", "torch-legacy", "pickle"):
            raise _disguised_pickle(p, kind, "weights file")
        raise CheckpointError(
            f"weights file '{p}' is not a valid safetensors file: {_safetensors_header_problem(p, kind)}; "
            f"expected an 8-byte little-endian header length followed by a JSON header, as safetensors' "
            f"save_file writes. Is the file truncated or corrupt? Copy or export it again")
    if kind in ("pickle", "unknown"):
        _refuse_foreign(p, kind, "weights file")
    if kind in ("empty", "lfs-pointer", "unknown"):
        raise _not_torch(p, kind, "a .safetensors or torch (.pt/.pth/.ckpt) weights file")
    obj = _load_torch(p, kind, "weights file", trust)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"weights file '{p}' holds a {type(obj).__name__}; expected a dict of tensors "
                              f"(a state dict, or a dict wrapping one)")
    return (obj if isinstance(obj, dict) else dict(obj)), {}


# ------------------------------------------------------------------------------------------------- helpers

def _refuse_foreign(p: Path, kind: str, what: str) -> None:
    """A plain pickle (or an unknown file that parses as one) is never a torch checkpoint; if it would import
    code, say so (``UnsafeCheckpointError``), otherwise return and let the caller report the format."""
    try:
        unsafe = _unsafe_globals(p, "pickle")
    except CheckpointError:
        return
    if unsafe:
        raise _refuse(p, what, unsafe, trust_helps=False,
                      extra=f" It is {_KIND_TEXT['pickle']}, not a torch checkpoint, so --trust-checkpoint "
                            f"would not make it loadable either; sonokit did not unpickle it.")
    if kind == "pickle":
        raise CheckpointError(f"{what} '{p}' is {_KIND_TEXT['pickle']}, not a torch checkpoint; expected a file "
                              f"written by torch.save, Lightning or safetensors (torch.save writes a zip archive)")


def _disguised_pickle(p: Path, kind: str, what: str) -> CheckpointError:
    """A file named ``.safetensors`` whose bytes are a pickle: refused, never unpickled (the globals it would
    import are listed from a static scan)."""
    try:
        unsafe = _unsafe_globals(p, kind)
    except CheckpointError:
        unsafe = []
    told = (f"{what} '{p}': it is named .safetensors but is not a safetensors file; its bytes are "
            f"{_KIND_TEXT[kind]}. sonokit never unpickles a file named .safetensors, not even with "
            f"--trust-checkpoint / trust=True.")
    if not unsafe:
        return CheckpointError(f"cannot load {told} Expected an 8-byte little-endian header length followed by "
                               f"a JSON header, as safetensors' save_file writes; if you trust this torch file, "
                               f"rename it to .pt")
    return UnsafeCheckpointError(
        f"refusing to load {told} Its pickle would import {', '.join(unsafe)}; sonokit never writes such types, "
        f"and loading them would execute code from the file. If you made it yourself or fully trust its "
        f"source, rename it to .pt and load it with --trust-checkpoint / trust=True (dangerous: a malicious "
        f"file then runs any code it holds, with your permissions).", path=p, globals=unsafe)


def _not_torch(p: Path, kind: str, expected: str) -> CheckpointError:
    if kind == "empty":
        return CheckpointError(f"'{p}' is an empty file (0 bytes); expected {expected}. Was a copy or download "
                               f"interrupted? Copy the file again")
    if kind == "lfs-pointer":
        return CheckpointError(f"'{p}' is {_KIND_TEXT['lfs-pointer']}; expected {expected}. Fetch the real file "
                               f"with `git lfs pull`")
    with _open(p) as fh:
        head = fh.read(16)
    return CheckpointError(f"'{p}' is not a checkpoint: its first bytes {head!r} match no known format; expected "
                           f"{expected} (a zip archive starts with b'PK', safetensors with an 8-byte header length "
                           f"and '{{')")


def _safetensors_header_problem(p: Path, kind: str) -> str:
    size = p.stat().st_size
    if kind == "empty":
        return "it is an empty file (0 bytes)"
    with _open(p) as fh:
        head = fh.read(9)
    if len(head) < 8:
        return f"it is only {size} bytes long, shorter than the 8-byte header length"
    (n,) = struct.unpack("<Q", head[:8])
    if n > _MAX_SAFETENSORS_HEADER or n + 8 > size:
        return f"its first 8 bytes declare a {n}-byte header but the file is {size} bytes"
    return f"its header does not start with '{{' (found {head[8:9]!r})"


def _read_safetensors(p: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(p), framework="pt", device="cpu") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError, json.JSONDecodeError) as e:
        reason = _reason(e)
        raise CheckpointError(
            f"weights file '{p}' is not a valid safetensors file ({_size(p)}): {reason}; expected a complete "
            f"file as safetensors' save_file writes it. Is it truncated or corrupt? Copy or export it again") from None
    return tensors, meta
