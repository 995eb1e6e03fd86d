"""torch Datasets over any reader: letterboxed to a square, optionally cached in memory."""
from __future__ import annotations

import logging

import numpy as np
import torch

from ..errors import DataError
from .datasets import DatasetReader
from .preprocess import letterbox

log = logging.getLogger("sonokit.data")


class SegmentationDataset(torch.utils.data.Dataset):
    """Samples ``ids`` of ``reader`` as ``{"image": (1,S,S) float32, "mask": (1,S,S) float32, "index": int}``.

    Unreadable samples (any :class:`DataError`: corrupt file, size mismatch, missing mask) are logged and
    skipped, and listed in :attr:`skipped` — or raised at once with ``fail_fast=True``. With ``cache=True``
    every sample is read and letterboxed once, up front (``S*S*2`` bytes per sample as uint8).
    """

    def __init__(self, reader: DatasetReader, ids: list[str], *, image_size: int, cache: bool = True,
                 fail_fast: bool = False, require_mask: bool = True) -> None:
        self.reader, self.size, self.cache = reader, int(image_size), cache
        self.fail_fast, self.require_mask = fail_fast, require_mask
        self.skipped: list[tuple[str, str]] = []
        self.ids: list[str] = []
        self._cache: list[tuple[np.ndarray, np.ndarray]] = []
        for i in ids:
            rec = reader.record(i)
            if not cache:
                if require_mask and rec.missing_mask:
                    self._skip(i, DataError(f"no mask found for image '{rec.image}'"))
                    continue
                self.ids.append(i)
                continue
            try:
                item = self._prepare(i)
            except DataError as e:
                self._skip(i, e)
                continue
            self.ids.append(i)
            # stored as uint8 to keep memory small: image quantised to 1/255 (PNG sources are 8-bit anyway)
            self._cache.append(((item[0] * 255).round().astype(np.uint8), item[1].astype(np.uint8)))
        if not self.ids:
            raise DataError(f"none of the {len(ids)} requested samples of '{reader.root}' could be read "
                            f"(first problem: {self.skipped[0][1] if self.skipped else 'none requested'})")

    def _skip(self, sid: str, err: Exception) -> None:
        if self.fail_fast:
            raise err
        log.warning("skipping sample '%s': %s", sid, err)
        self.skipped.append((sid, str(err)))

    def _prepare(self, sid: str) -> tuple[np.ndarray, np.ndarray]:
        s = self.reader.get(sid)
        if s.mask is None and self.require_mask:
            raise DataError(f"sample '{s.path}' has no mask; segmentation training needs masks")
        img, _ = letterbox(torch.from_numpy(s.image), self.size)
        mask = np.zeros_like(img.numpy()) if s.mask is None else letterbox(torch.from_numpy(s.mask), self.size, is_mask=True)[0].numpy()
        return img.numpy(), mask

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        if self.cache:
            img, mask = self._cache[i]
            image = torch.from_numpy(img).float().div_(255.0)
            m = torch.from_numpy(mask).float()
        else:
            try:
                img, mask = self._prepare(self.ids[i])
            except DataError as e:
                if self.fail_fast:
                    raise
                log.warning("skipping sample '%s' at load time: %s", self.ids[i], e)
                return self[(i + 1) % len(self)]
            image, m = torch.from_numpy(img), torch.from_numpy(mask)
        return {"image": image, "mask": m, "index": i}
