"""The organ (anatomy) vocabulary: names -> indices for the batch's ``organ`` entry.

Readers name the anatomy of their samples (BUSI ``breast``, HC18 ``fetal_head``, DDTI ``thyroid``, the
simulator ``phantom``; a folder dataset's ``labels.csv`` may give an ``anatomy`` column). Models conditioned
on anatomy (A-ViT) see the index of that name in a vocabulary: sonokit's default below (16 entries, as the
A-ViT paper's 16 anatomical classes), or a config's ``data.organs`` list, so a user adds organs without code.
A sample whose anatomy is unknown, or not in the vocabulary, gets index -1.
"""
from __future__ import annotations

from ..errors import ConfigError

DEFAULT_ORGANS: tuple[str, ...] = (
    "breast", "thyroid", "fetal_head", "phantom", "liver", "kidney", "heart", "lung", "gallbladder", "carotid",
    "abdomen", "fetal_body", "prostate", "ovary", "musculoskeletal", "other",
)


def organ_vocabulary(organs: list[str] | tuple[str, ...] | None = None) -> tuple[str, ...]:
    vocab = tuple(organs) if organs else DEFAULT_ORGANS
    if len(set(vocab)) != len(vocab):
        raise ConfigError(f"data.organs names an organ twice: {list(vocab)}")
    return vocab


def organ_index(name: str | None, vocab: tuple[str, ...]) -> int:
    return vocab.index(name) if name in vocab else -1
