r"""Reading checkpoint and weights files without running code from them.

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

Every file sonokit reads as weights comes through here: training checkpoints (``sonokit evaluate``,
``segment``, ``enhance``, ``export``; :func:`sonokit.evaluate`, :func:`sonokit.predict`,
``Segmenter`` / ``Classifier.from_checkpoint``, ``load_enhancer``; ``--resume``'s ``last.ckpt``;
``init.checkpoint``), encoder files (``--encoder-checkpoint``, ``model.encoder_checkpoint``), timm/ImageNet
weights (``encoder_weights``: timm is handed the state dict, never the path), enhancer weights
(``create_enhancer(..., weights=)``) and exported models (:func:`sonokit.export.load_safetensors_model`).
``grep -rn "torch.load\|safe_open\|load_file" src/`` finds readers only in this package. The one other reader:

* Lightning, on ``--resume``: ``trainer.fit(ckpt_path=last.ckpt, weights_only=not trust)`` re-reads the file
  after :func:`load_checkpoint` (with the same ``trust``) has checked it; without trust torch's restricted
  unpickler is a second gate there too.

Model factories (``create_model(..., encoder_checkpoint=, encoder_weights=)``, ``create_enhancer(...,
weights=)``) take no ``trust``: a file they are given must pass the checks.

The package: :mod:`.formats` (what a file is, from its bytes; the messages), :mod:`.scan` (the static pickle
scan and :data:`SAFE_GLOBALS`), :mod:`.load` (the two loaders and their refusals).
"""
from __future__ import annotations

from ..errors import TRUST_HELP, UnsafeCheckpointError
from .formats import detect_format
from .load import load_checkpoint, load_weights
from .scan import SAFE_GLOBALS

__all__ = [
    "SAFE_GLOBALS",
    "TRUST_HELP",
    "UnsafeCheckpointError",
    "detect_format",
    "load_checkpoint",
    "load_weights",
]
