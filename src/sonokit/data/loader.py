"""torch Datasets over any reader: letterboxed to a square, optionally cached in memory, with batch metadata.

Every item is a dict: ``image`` (1, S, S) float32 in [0, 1], ``mask`` (1, S, S) float32 (zeros when the
sample has none), ``index`` (position in the dataset), ``label`` (class index in ``classes``, -1 unknown),
``organ`` (index in the organ vocabulary, -1 unknown; :mod:`sonokit.data.organs`) and ``spacing``
(2,) float32 pixel spacing in mm of the letterboxed image (NaN when unknown).
"""
from __future__ import annotations

import logging
import math

import numpy as np
import torch

from ..errors import DataError
from .datasets import DatasetReader
from .organs import organ_index, organ_vocabulary
from .preprocess import Letterbox, letterbox

log = logging.getLogger("sonokit.data")


class ImageDataset(torch.utils.data.Dataset):
    """Samples ``ids`` of ``reader`` as dicts (see the module docstring).

    Unreadable samples (any :class:`DataError`: corrupt file, size mismatch, missing mask), and with
    ``require_label`` samples without a class label, are logged and skipped, and listed in :attr:`skipped`
    — or raised at once with ``fail_fast=True``. With ``cache=True`` every sample is read and letterboxed
    once, up front (``S*S*2`` bytes per sample as uint8).

    Args:
        classes: class vocabulary: the label index is the position of a sample's label in it.
        label_key: what gives the label: ``"label"`` (the reader's class) or a key of the reader's meta.
        organs: organ vocabulary (None: sonokit's default).
    """

    def __init__(self, reader: DatasetReader, ids: list[str], *, image_size: int, cache: bool = True,
                 fail_fast: bool = False, require_mask: bool = True, classes: list[str] | None = None,
                 label_key: str = "label", require_label: bool = False,
                 organs: list[str] | tuple[str, ...] | None = None) -> None:
        self.reader, self.size, self.cache = reader, int(image_size), cache
        self.fail_fast, self.require_mask, self.require_label = fail_fast, require_mask, require_label
        self.classes = list(classes) if classes else None
        self.label_key = label_key
        self.organs = organ_vocabulary(organs)
        self.skipped: list[tuple[str, str]] = []
        self.ids: list[str] = []
        self._cache: list[tuple[np.ndarray, np.ndarray]] = []
        self._meta: list[dict] = []
        for i in ids:
            rec = reader.record(i)
            if require_label and self._label(rec) < 0:
                self._skip(i, DataError(f"sample '{rec.image}' has no class label"
                                        + (f" among {self.classes}" if self.classes else "")))
                continue
            if not cache:
                if require_mask and rec.missing_mask:
                    self._skip(i, DataError(f"no mask found for image '{rec.image}'"))
                    continue
                self.ids.append(i)
                continue
            try:
                img, mask, box = self._prepare(i)
            except DataError as e:
                self._skip(i, e)
                continue
            self.ids.append(i)
            # stored as uint8 to keep memory small: image quantised to 1/255 (PNG sources are 8-bit anyway)
            self._cache.append(((img * 255).round().astype(np.uint8), mask.astype(np.uint8)))
            self._meta.append(self._item_meta(rec, box))
        if not self.ids:
            raise DataError(f"none of the {len(ids)} requested samples of '{reader.root}' could be used "
                            f"(first problem: {self.skipped[0][1] if self.skipped else 'none requested'})")

    def _skip(self, sid: str, err: Exception) -> None:
        if self.fail_fast:
            raise err
        log.warning("skipping sample '%s': %s", sid, err)
        self.skipped.append((sid, str(err)))

    def _label(self, rec) -> int:
        value = rec.get_label(self.label_key)
        if value is None:
            return -1
        if self.classes is None:
            return -1
        return self.classes.index(value) if value in self.classes else -1

    def _item_meta(self, rec, box: Letterbox) -> dict:
        sp = rec.spacing
        scale = box.orig_h / box.new_h if box.new_h else math.nan  # mm per letterboxed pixel
        spacing = [math.nan, math.nan] if sp is None else [sp[0] * scale, sp[1] * scale]
        return {"label": self._label(rec), "organ": organ_index(rec.anatomy or self.reader.anatomy, self.organs),
                "spacing": spacing}

    def _prepare(self, sid: str) -> tuple[np.ndarray, np.ndarray, Letterbox]:
        s = self.reader.get(sid)
        if s.mask is None and self.require_mask:
            raise DataError(f"sample '{s.path}' has no mask; segmentation training needs masks")
        img, box = letterbox(torch.from_numpy(s.image), self.size)
        mask = np.zeros_like(img.numpy()) if s.mask is None else letterbox(torch.from_numpy(s.mask), self.size, is_mask=True)[0].numpy()
        return img.numpy(), mask, box

    def __len__(self) -> int:
        return len(self.ids)

    def label_counts(self, k: int) -> list[int]:
        """How many samples carry each of the ``k`` class indices (unknown labels are not counted)."""
        labels = [m["label"] for m in self._meta] if self.cache else [
            self._label(self.reader.record(i)) for i in self.ids]
        return [sum(1 for v in labels if v == c) for c in range(k)]

    def __getitem__(self, i: int) -> dict:
        if self.cache:
            img, mask = self._cache[i]
            image = torch.from_numpy(img).float().div_(255.0)
            m = torch.from_numpy(mask).float()
            meta = self._meta[i]
        else:
            try:
                img, mask, box = self._prepare(self.ids[i])
            except DataError as e:
                if self.fail_fast:
                    raise
                log.warning("skipping sample '%s' at load time: %s", self.ids[i], e)
                return self[(i + 1) % len(self)]
            image, m = torch.from_numpy(img), torch.from_numpy(mask)
            meta = self._item_meta(self.reader.record(self.ids[i]), box)
        return {"image": image, "mask": m, "index": i, "label": meta["label"], "organ": meta["organ"],
                "spacing": torch.tensor(meta["spacing"], dtype=torch.float32)}
