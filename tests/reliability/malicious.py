"""Hostile checkpoint and weights files, for testing that sonokit never runs code from a file it reads.

Each maker writes a file whose *unpickling* (``torch.load(weights_only=False)``, ``pickle.load``) creates an
empty ``marker`` file — a harmless, observable stand-in for arbitrary code (``pathlib.Path.touch`` on a path in
the test's temporary folder; nothing else is touched). A loader is safe if it refuses the file and ``marker``
does not exist afterwards. :func:`detonate` loads a file the unsafe way, to prove that a hostile file is live
(a test whose payload never fires would pass vacuously).

Use from any test::

    from tests.reliability.malicious import HOSTILE, make_hostile

    @pytest.mark.parametrize("kind", sorted(HOSTILE))
    def test_predict_refuses(tmp_path, kind):
        path, marker = make_hostile(kind, tmp_path)
        ... run the command / function on ``path`` and expect UnsafeCheckpointError (exit code != 0) ...
        assert not marker.exists()

Not a test module (no ``test_`` prefix): pytest collects nothing here.
"""
from __future__ import annotations

import pathlib
import pickle
from pathlib import Path
from typing import Callable

import torch

__all__ = [
    "HOSTILE",
    "TORCH_HOSTILE",
    "Touch",
    "ckpt_as_safetensors",
    "detonate",
    "legacy_pt",
    "lightning_shaped",
    "make_hostile",
    "nested_in_hparams",
    "plain_pickle",
    "real_state_dict",
    "text_pickle",
    "zip_ckpt",
    "zip_protocol4",
]


class Touch:
    """Unpickling this object calls ``pathlib.Path(marker).touch()``: it creates the (empty) marker file.

    ``__reduce__`` is how any pickled object names the callable that rebuilds it; a real attack names
    ``os.system`` or ``builtins.exec`` instead. ``torch.save`` (pickle protocol 2) writes it as
    ``getattr(pathlib.Path, "touch")(pathlib.PosixPath(marker))``; protocol 4 as the global
    ``pathlib.Path.touch``.
    """

    def __init__(self, marker: str | Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def real_state_dict() -> dict[str, torch.Tensor]:
    """A small but real state dict (a 1->4 conv and its bias) to sit next to the payload."""
    g = torch.Generator().manual_seed(0)
    return {"model.conv.weight": torch.randn(4, 1, 3, 3, generator=g), "model.conv.bias": torch.zeros(4)}


def _lightning_checkpoint(hparams: dict, callbacks: dict | None = None) -> dict:
    """A dict shaped like a sonokit/Lightning 2.x checkpoint."""
    return {
        "epoch": 0,
        "global_step": 2,
        "pytorch-lightning_version": "2.6.6",
        "state_dict": real_state_dict(),
        "loops": {},
        "callbacks": callbacks if callbacks is not None else {},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.001, "params": [0, 1]}]}],
        "lr_schedulers": [{"base_lrs": [0.001], "last_epoch": 2, "lr_lambdas": [None]}],
        "hparams_name": "kwargs",
        "hyper_parameters": hparams,
    }


def _hparams() -> dict:
    return {"model": "resunet_resnet18", "model_kwargs": {"in_chans": 1, "decoder_channels": (16, 16, 8, 8, 8)},
            "lr": 0.001, "image_size": 48, "seed": 0}


# ---------------------------------------------------------------------------------------------- the makers

def zip_ckpt(path: Path, marker: Path) -> Path:
    """A ``torch.save`` zip (the format of every ``.ckpt``) holding the payload next to a real state dict."""
    torch.save({"state_dict": real_state_dict(), "payload": Touch(marker)}, path)
    return path


def legacy_pt(path: Path, marker: Path) -> Path:
    """The same, in torch's legacy (pre-1.6) non-zip format: ``_use_new_zipfile_serialization=False``."""
    torch.save({"state_dict": real_state_dict(), "payload": Touch(marker)}, path,
               _use_new_zipfile_serialization=False)
    return path


def zip_protocol4(path: Path, marker: Path) -> Path:
    """A ``torch.save`` zip with pickle protocol 4, where globals are named through the stack
    (``STACK_GLOBAL``) rather than inline: a static scan must follow the stack to see them."""
    torch.save({"state_dict": real_state_dict(), "payload": Touch(marker)}, path, pickle_protocol=4)
    return path


def plain_pickle(path: Path, marker: Path) -> Path:
    """A plain ``pickle.dump`` (protocol 4) of a state-dict-like dict with the payload — not a torch file."""
    with open(path, "wb") as fh:
        pickle.dump({"state_dict": {"w": [0.0, 1.0]}, "payload": Touch(marker)}, fh, protocol=4)
    return path


def text_pickle(path: Path, marker: Path) -> Path:
    """A protocol-0 (text, no binary header) pickle with the payload: starts with neither ``PK`` nor ``\\x80``."""
    path.write_bytes(pickle.dumps({"payload": Touch(marker)}, protocol=0))
    return path


def ckpt_as_safetensors(path: Path, marker: Path) -> Path:
    """The zip checkpoint of :func:`zip_ckpt` under a ``.safetensors`` name (``path`` should end so)."""
    return zip_ckpt(path, marker)


def nested_in_hparams(path: Path, marker: Path) -> Path:
    """A Lightning-shaped checkpoint whose payload hides deep inside ``hyper_parameters`` (a list in a dict
    in a dict), where a loader that checks only the top-level keys would not look."""
    hp = _hparams()
    hp["model_kwargs"]["extra"] = {"levels": [1, 2, {"deeper": [Touch(marker)]}]}
    torch.save(_lightning_checkpoint(hp), path)
    return path


def lightning_shaped(path: Path, marker: Path) -> Path:
    """A checkpoint shaped like sonokit's (state_dict + hyper_parameters + callbacks + optimizer/scheduler
    states) with the payload in the ModelCheckpoint callback's state, the way a tampered ``best.ckpt``
    would look; every key a caller checks is present and valid."""
    cb = {"ModelCheckpoint{'monitor': 'val_dice', 'mode': 'max'}": {
        "monitor": "val_dice", "best_model_score": torch.tensor(0.5), "best_model_path": Touch(marker),
        "current_score": torch.tensor(0.5), "dirpath": "runs/x/checkpoints"}}
    torch.save(_lightning_checkpoint(_hparams(), cb), path)
    return path


#: kind -> (maker, file name). Every maker is ``maker(path, marker) -> path`` and writes one hostile file.
HOSTILE: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "zip_ckpt": (zip_ckpt, "hostile.ckpt"),
    "legacy_pt": (legacy_pt, "hostile.pt"),
    "zip_protocol4": (zip_protocol4, "hostile_p4.ckpt"),
    "plain_pickle": (plain_pickle, "hostile.pkl"),
    "text_pickle": (text_pickle, "hostile_text.pth"),
    "ckpt_as_safetensors": (ckpt_as_safetensors, "hostile.safetensors"),
    "nested_in_hparams": (nested_in_hparams, "nested.ckpt"),
    "lightning_shaped": (lightning_shaped, "best.ckpt"),
}

#: the kinds that are real torch files under a torch name: ``trust=True`` loads them (and fires the payload);
#: the others (plain/text pickles, a pickle named .safetensors) stay refused even with trust
TORCH_HOSTILE = ("zip_ckpt", "legacy_pt", "zip_protocol4", "nested_in_hparams", "lightning_shaped")


def make_hostile(kind: str, folder: Path) -> tuple[Path, Path]:
    """Write the hostile file ``kind`` (a key of :data:`HOSTILE`) into ``folder/kind/``; returns
    ``(path, marker)``. ``marker`` does not exist yet; it appears if and only if the file is unpickled."""
    maker, name = HOSTILE[kind]
    d = Path(folder) / kind
    d.mkdir(parents=True, exist_ok=True)
    marker = d / "PWNED"
    if marker.exists():
        marker.unlink()
    path = maker(d / name, marker)
    assert not marker.exists(), "writing a hostile file must not fire its payload"
    return path, marker


def detonate(path: Path) -> None:
    """Load ``path`` the unsafe way (what ``torch.load(weights_only=False)`` / ``pickle.load`` do), to show
    that its payload is live. Errors after the payload fired (a plain pickle is not a torch file) are ignored."""
    try:
        with open(path, "rb") as fh:  # a file object: torch would read a path named .safetensors as safetensors
            torch.load(fh, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001
        with open(path, "rb") as fh:
            try:
                pickle.load(fh)
            except Exception:  # noqa: BLE001
                pass
