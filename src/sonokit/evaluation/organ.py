"""How well an anatomy-aware encoder (A-ViT) names the organ of images it has not seen: the accuracy of its
organ head on a shard folder of held-out images (``sonokit data shard ... --split NAME=SPLIT.json:test``).

A-ViT needs the organ at inference (the paper's stated limitation); sonokit's organ head predicts it when it
is not given, and the ACDT blocks then use the probability-weighted anatomical context. This is the first half
of the check the issue asks for (how often is the organ right); the second (what a predicted or a wrong organ
costs downstream) is the ``organs`` setting of :class:`sonokit.experiments.PretrainAblation`.

``organ_offset_effect(encoder, shards)`` measures how far the organ moves the deformable sampling (own vs a
wrong organ), which bounds what the organ can change downstream.

``organ_accuracy(encoder, shards)`` takes an ``encoder.safetensors`` written by ``sonokit pretrain`` (the
encoder is rebuilt from the file's own metadata) or an encoder module, and returns overall accuracy, the
organ-balanced accuracy, per-source accuracy with what each source was predicted as, and the confusion
counts (true organ -> predicted organ).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch

from ..errors import CheckpointError, ConfigError


def load_pretrained_encoder(path: str | Path) -> torch.nn.Module:
    """The encoder saved by ``sonokit pretrain`` (``encoder.safetensors``), rebuilt from its own metadata
    (``encoder_spec``) and loaded; nothing in the file can run code."""
    from ..models.builder import build_encoder
    from ..serialization import load_weights

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"encoder checkpoint '{p}' does not exist; expected the encoder.safetensors that "
                              "`sonokit pretrain` writes in its run folder")
    _, meta = load_weights(p, trustable=False)
    if meta.get("format") != "sonokit-encoder" or "encoder_spec" not in meta:
        raise CheckpointError(f"'{p}' is not an encoder saved by `sonokit pretrain` (its metadata has no "
                              f"encoder_spec; found keys {sorted(meta)[:6]})")
    spec = json.loads(meta["encoder_spec"])
    name = spec.pop("name")
    img_size, in_chans = spec.pop("img_size", None), spec.pop("in_chans", 1)
    return build_encoder(name, in_chans=in_chans, img_size=img_size, checkpoint=str(p), encoder_kwargs=spec)


def _source(key: str) -> str:
    return key.split("__", 1)[0]


@torch.no_grad()
def organ_accuracy(encoder: torch.nn.Module | str | Path, shards: str | Path, *, image_size: int | None = None,
                   batch_size: int = 32, device: str = "cpu") -> dict:
    """Score the organ head of ``encoder`` on every sample of the shard folder ``shards`` whose organ is known.

    ``image_size``: the letterboxed input side (default: the encoder's own ``img_size``). The shards' organ
    vocabulary must be the encoder's (same names, same order: the head's outputs are its indices)."""
    from ..data.shard_stream import ShardDataset
    from ..data.shards import read_manifest

    where = str(encoder) if isinstance(encoder, (str, Path)) else type(encoder).__name__
    enc = load_pretrained_encoder(encoder) if isinstance(encoder, (str, Path)) else encoder
    model = getattr(enc, "model", enc)
    if getattr(model, "organ_head", None) is None:
        raise ConfigError(f"encoder '{where}' has no organ head (only A-ViT encoders with ACDT blocks and "
                          "organ_head: true predict the organ)")
    vocab = list(read_manifest(shards)["vocabulary"])
    n_out = model.organ_head[-1].out_features
    if n_out != len(vocab):
        raise ConfigError(f"the organ head of '{where}' has {n_out} outputs but the shards in '{shards}' use a "
                          f"{len(vocab)}-organ vocabulary ({', '.join(vocab)}); score on shards written with the "
                          "pretraining's vocabulary (sonokit data shard --organs)")
    size = int(image_size or getattr(enc, "spec", {}).get("img_size") or 224)
    ds = ShardDataset(shards, image_size=size, shuffle_buffer=0, split_by_rank=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=0)
    enc.eval().to(device)
    truth, pred, sources = [], [], []
    for batch in loader:
        known = batch["organ"] >= 0
        if not known.any():
            continue
        x = batch["image"][known].to(device)
        model.run_blocks(x, None)  # no organ given: the head predicts it (organ_logits)
        pred += model.organ_logits.argmax(1).cpu().tolist()
        truth += batch["organ"][known].tolist()
        sources += [_source(k) for k, m in zip(batch["key"], known.tolist()) if m]
    if not truth:
        raise ConfigError(f"no sample in '{shards}' names an organ of the vocabulary; nothing to score")
    confusion = Counter((vocab[t], vocab[p]) for t, p in zip(truth, pred))
    organs = sorted({vocab[t] for t in truth}, key=vocab.index)
    per_organ = {o: sum(c for (t, p), c in confusion.items() if t == o and p == o)
                 / sum(c for (t, _), c in confusion.items() if t == o) for o in organs}
    per_source = {}
    for s in dict.fromkeys(sources):
        idx = [i for i, src in enumerate(sources) if src == s]
        per_source[s] = {"n": len(idx), "organ": vocab[truth[idx[0]]],
                         "accuracy": sum(truth[i] == pred[i] for i in idx) / len(idx),
                         "predicted": dict(Counter(vocab[pred[i]] for i in idx).most_common())}
    return {"n": len(truth), "accuracy": sum(t == p for t, p in zip(truth, pred)) / len(truth),
            "balanced_accuracy": sum(per_organ.values()) / len(per_organ), "per_organ": per_organ,
            "per_source": per_source, "image_size": size, "vocabulary": vocab,
            "confusion": {t: {p: c for (tt, p), c in confusion.items() if tt == t} for t in organs},
            "skipped": list(ds.errors)}


@torch.no_grad()
def organ_offset_effect(encoder: torch.nn.Module | str | Path, shards: str | Path, *, wrong: str = "heart",
                        n: int = 64, image_size: int | None = None) -> list[dict]:
    """How far the organ moves the ACDT blocks' sampling: per ACDT block, the mean |Δp| (tokens) with each
    image's own organ, with ``wrong`` instead, and the mean |Δp(own) − Δp(wrong)|, over ``n`` samples of
    ``shards`` whose organ is known, evenly spread over the shards' order (so over every source). Near-zero
    differences mean the organ cannot matter downstream."""
    from ..data.shard_stream import ShardDataset
    from ..models.avit.acdt import ACDTBlock

    enc = load_pretrained_encoder(encoder) if isinstance(encoder, (str, Path)) else encoder
    model = getattr(enc, "model", enc)
    index = [i for i, b in enumerate(model.blocks) if isinstance(b, ACDTBlock)]
    blocks = [model.blocks[i] for i in index]
    if not blocks:
        raise ConfigError(f"encoder '{encoder if isinstance(encoder, (str, Path)) else type(enc).__name__}' has no "
                          "ACDT blocks: the organ does not enter it")
    size = int(image_size or getattr(enc, "spec", {}).get("img_size") or 224)
    ds = ShardDataset(shards, image_size=size, shuffle_buffer=0, split_by_rank=False)
    vocab = list(ds.organs)
    if wrong not in vocab:
        raise ConfigError(f"organ '{wrong}' is not in the shards' vocabulary; known organs: {', '.join(vocab)}")
    if len(vocab) != model.n_organs:
        raise ConfigError(f"the encoder takes {model.n_organs} organs but the shards in '{shards}' use a "
                          f"{len(vocab)}-organ vocabulary ({', '.join(vocab)})")
    known = [(s["image"], int(s["organ"])) for s in ds if s["organ"] >= 0]
    if not known:
        raise ConfigError(f"no sample in '{shards}' names an organ of the vocabulary")
    pick = sorted(set(torch.linspace(0, len(known) - 1, min(n, len(known))).round().long().tolist()))
    xs, organs = [known[i][0] for i in pick], [known[i][1] for i in pick]  # spread over every source
    x, own = torch.stack(xs), torch.tensor(organs)
    enc.eval()
    offsets = {}
    for name, organ in (("own", own), ("wrong", torch.full_like(own, vocab.index(wrong)))):
        model.run_blocks(x, organ)
        offsets[name] = [b.last_offsets for b in blocks]
    return [{"block": i, "offset_own": float(a.abs().mean()), "offset_wrong": float(w.abs().mean()),
             "difference": float((a - w).abs().mean()), "images": len(xs)}
            for i, a, w in zip(index, offsets["own"], offsets["wrong"])]
