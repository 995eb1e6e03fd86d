"""The public loaders, :func:`load_checkpoint` and :func:`load_weights`, and the refusals they raise.

Steps 2-4 of :mod:`sonokit.serialization`'s docstring for torch files: the static scan (:mod:`.scan`), then
``torch.load(weights_only=True)`` on the same open file, then — only with ``trust=True`` — the full unpickler.
"""
from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ..errors import CheckpointError, UnsafeCheckpointError
from .formats import (
    KIND_TEXT,
    corrupt_error,
    detect_format,
    error_reason,
    existing_file,
    not_torch_error,
    open_file,
    read_safetensors,
    safetensors_header_problem,
)
from .scan import SAFE_GLOBALS, unsafe_globals

log = logging.getLogger("sonokit.serialization")

_TRUST_HINT = ("If you made this file yourself or fully trust its source, load it anyway with --trust-checkpoint "
               "on the command line or trust=True in Python (dangerous: a malicious file then runs any code it "
               "holds, with your permissions).")
# for readers that take no trust flag (model factories' encoder_checkpoint / encoder_weights / weights, exported
# models): --trust-checkpoint cannot help there, so the refusal says how to convert a file one trusts instead
_NO_TRUST_HINT = ("This file is read where nothing is trusted (model factories: encoder_checkpoint, encoder_weights, "
                  "an enhancer's weights; exported models), so --trust-checkpoint does not apply. If you made it "
                  "yourself or fully trust its source, convert it once: read it with "
                  "sonokit.serialization.load_weights(path, trust=True) (dangerous: a malicious file then runs any "
                  "code it holds, with your permissions) and write its tensors with safetensors.torch.save_file.")


def _hint(trustable: bool) -> str:
    return _TRUST_HINT if trustable else _NO_TRUST_HINT


def _refuse(p: Path, what: str, unsafe: list[str], *, trust_helps: bool = True, trustable: bool = True,
            extra: str = "") -> UnsafeCheckpointError:
    names = ", ".join(unsafe) if unsafe else "objects torch's safe loader does not allow"
    msg = (f"refusing to load {what} '{p}': its pickle would import {names}. sonokit never writes such types "
           f"(its checkpoints hold only tensors, numbers, strings, lists and dicts), and loading them would "
           f"execute code from the file.{extra} ")
    msg += _hint(trustable) if trust_helps else ""
    return UnsafeCheckpointError(msg.strip(), path=p, globals=list(unsafe))


def _trusted_load(p: Path, fh: BinaryIO, what: str, unsafe: list[str]) -> Any:
    log.warning("loading %s '%s' with trust=True (--trust-checkpoint): unpickling it may execute code from the "
                "file%s", what, p, f" (it imports {', '.join(unsafe)})" if unsafe else "")
    fh.seek(0)
    try:
        return torch.load(fh, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any failure inside torch becomes one clear error
        raise CheckpointError(f"cannot read {what} '{p}' even with trust=True: {error_reason(e)}; expected "
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


def _load_torch(p: Path, kind: str, what: str, trust: bool, trustable: bool = True) -> Any:
    """Steps 2-4 of the module docstring for a zip or legacy torch file.

    The file is opened once; the scan and ``torch.load`` read the same open file (so a file swapped in between
    is not what gets loaded), and ``torch.load`` gets the file object, not the path, because torch (2.14 here)
    picks its reader from a path's suffix (``.safetensors``) where sonokit goes by the bytes. ``trustable``:
    whether the caller offers ``trust`` (the refusals say how to proceed either way).
    """
    with open_file(p) as fh:
        unsafe = unsafe_globals(p, kind, fh)
        if unsafe:
            if not trust:
                raise _refuse(p, what, unsafe, trustable=trustable)
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
                raise _refuse(p, what, named, trustable=trustable, extra=f" (torch's safe loader: {detail})") from None
            raise CheckpointError(
                f"cannot read {what} '{p}' safely: torch's restricted (weights_only) reader stopped at {detail!r}, "
                f"although the types it names are all allowed; expected a file as torch.save writes it with its "
                f"default pickle protocol 2 (a file saved with pickle_protocol=4 or later is read only by the full "
                f"unpickler). Save it again with torch.save's defaults"
                + ("; or, if you made it yourself or fully trust its source, load it with --trust-checkpoint / "
                   "trust=True (dangerous: that runs any code it holds)" if trustable else "")) from None
        except Exception as e:  # noqa: BLE001 - any failure inside torch becomes one clear error
            raise corrupt_error(p, kind, e) from None


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
    p = existing_file(Path(path), "checkpoint", "a Lightning/torch checkpoint file (.ckpt)")
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
        raise not_torch_error(p, kind, "a Lightning/torch checkpoint (a zip archive written by torch.save)")
    obj = _load_torch(p, kind, "checkpoint", trust)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint '{p}' holds a {type(obj).__name__}; expected a dict as Lightning "
                              f"saves it (state_dict, hyper_parameters, ...)")
    return obj if isinstance(obj, dict) else dict(obj)


def load_weights(path: str | Path, *, trust: bool = False,
                 trustable: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
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
        trustable: False for a caller that offers no ``trust`` (a model factory): a refusal then says that
            ``--trust-checkpoint`` does not apply, and how to convert a file one trusts, instead of suggesting it.

    Raises:
        UnsafeCheckpointError: a torch file that would import other globals, or a pickle named
            ``.safetensors``; nothing was executed.
        CheckpointError: missing, a folder, empty, truncated/corrupt, a bad safetensors header, ...
    """
    p = existing_file(Path(path), "weights file", "a .safetensors or torch (.pt/.pth/.ckpt) weights file")
    kind = detect_format(p)
    if kind == "safetensors":
        return read_safetensors(p)
    if p.suffix.lower() == ".safetensors":
        if kind in ("zip", "torch-legacy", "pickle"):
            raise _disguised_pickle(p, kind, "weights file", trustable=trustable)
        raise CheckpointError(
            f"weights file '{p}' is not a valid safetensors file: {safetensors_header_problem(p, kind)}; "
            f"expected an 8-byte little-endian header length followed by a JSON header, as safetensors' "
            f"save_file writes. Is the file truncated or corrupt? Copy or export it again")
    if kind in ("pickle", "unknown"):
        _refuse_foreign(p, kind, "weights file")
    if kind in ("empty", "lfs-pointer", "unknown"):
        raise not_torch_error(p, kind, "a .safetensors or torch (.pt/.pth/.ckpt) weights file")
    obj = _load_torch(p, kind, "weights file", trust, trustable)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"weights file '{p}' holds a {type(obj).__name__}; expected a dict of tensors "
                              f"(a state dict, or a dict wrapping one)")
    return (obj if isinstance(obj, dict) else dict(obj)), {}


# ------------------------------------------------------------------------------------------------- helpers

def _refuse_foreign(p: Path, kind: str, what: str) -> None:
    """A plain pickle (or an unknown file that parses as one) is never a torch checkpoint; if it would import
    code, say so (``UnsafeCheckpointError``), otherwise return and let the caller report the format."""
    try:
        unsafe = unsafe_globals(p, "pickle")
    except CheckpointError:
        return
    if unsafe:
        raise _refuse(p, what, unsafe, trust_helps=False,
                      extra=f" It is {KIND_TEXT['pickle']}, not a torch checkpoint, so --trust-checkpoint "
                            f"would not make it loadable either; sonokit did not unpickle it.")
    if kind == "pickle":
        raise CheckpointError(f"{what} '{p}' is {KIND_TEXT['pickle']}, not a torch checkpoint; expected a file "
                              f"written by torch.save, Lightning or safetensors (torch.save writes a zip archive)")


def _disguised_pickle(p: Path, kind: str, what: str, *, trustable: bool = True) -> CheckpointError:
    """A file named ``.safetensors`` whose bytes are a pickle: refused, never unpickled (the globals it would
    import are listed from a static scan)."""
    try:
        unsafe = unsafe_globals(p, kind)
    except CheckpointError:
        unsafe = []
    told = (f"{what} '{p}': it is named .safetensors but is not a safetensors file; its bytes are "
            f"{KIND_TEXT[kind]}. sonokit never unpickles a file named .safetensors, not even with "
            f"--trust-checkpoint / trust=True.")
    if not unsafe:
        return CheckpointError(f"cannot load {told} Expected an 8-byte little-endian header length followed by "
                               f"a JSON header, as safetensors' save_file writes; if you trust this torch file, "
                               f"rename it to .pt")
    return UnsafeCheckpointError(
        f"refusing to load {told} Its pickle would import {', '.join(unsafe)}; sonokit never writes such types, "
        f"and loading them would execute code from the file. " + (
            "If you made it yourself or fully trust its source, rename it to .pt and load it with "
            "--trust-checkpoint / trust=True (dangerous: a malicious file then runs any code it holds, with your "
            "permissions)." if trustable else _NO_TRUST_HINT.replace("convert it once:", "rename it to .pt and convert it:")),
        path=p, globals=unsafe)

