"""The data half of every run: open the dataset, fix the split, select ids by part, fraction and class."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError


def open_reader(root: str | None, fmt: str | None):
    from ..data import open_dataset

    if root is None:
        raise ConfigError("data.root is not set; give the dataset folder in the config or with --set data.root=PATH")
    return open_dataset(root, fmt)


def load_or_make_split(reader, split_path: str | None, out_dir: Path, *, seed: int, fractions=(1.0,),
                       log=print) -> tuple[dict, str]:
    """``(split, its path)``: the split file ``split_path`` (checked against the dataset), or, without one, a
    random 70/10/20 split saved (pinned) to ``out_dir/split.json`` with a warning that it ignores duplicates."""
    from ..data.pin import pin_split
    from ..data.splits import load_split, make_split, save_split, verify_split

    if split_path:
        split = load_split(split_path)
        verify_split(split, reader.ids, split_path)
        return split, str(Path(split_path).resolve())
    path = out_dir / "split.json"
    if path.exists():  # a resumed run without data.split: keep the split it was trained with
        return load_split(path), str(path.resolve())
    log(f"no data.split given: making a random 70/10/20 split WITHOUT duplicate detection (saved to {path}); "
        "use `sonokit data split` for a de-duplicated one")
    split = make_split(reader.ids, labels={r.id: r.label for r in reader.records},
                       groups={r.id: r.group for r in reader.records}, seeds=(seed,),
                       fractions=tuple(sorted(set(fractions))), dataset=reader.name)
    save_split(pin_split(split, reader), path)
    return load_split(path), str(path.resolve())


def split_parts(cfg, reader, out: Path, log, *, label_key: str = "label") -> tuple[dict, str, list[str], list[str]]:
    """``(split, split_path, train_ids, val_ids)`` for a config with ``data`` (fraction, classes) and ``seed``."""
    from ..data.splits import filter_classes, select_ids

    d = cfg.data
    fraction = getattr(d, "fraction", 1.0)
    if not 0 < fraction <= 1:
        raise ConfigError(f"data.fraction must be in (0, 1], found {fraction}")
    split, path = load_or_make_split(reader, d.split, out, seed=cfg.seed, fractions=(fraction, 1.0), log=log)
    train = select_ids(split, "train", seed=cfg.seed, fraction=fraction)
    val = select_ids(split, "val")
    train = filter_classes(train, reader, d.classes, label_key=label_key)
    val = filter_classes(val, reader, d.classes, label_key=label_key)
    return split, path, train, val


def class_vocabulary(reader, classes: list[str] | None, label_key: str) -> list[str]:
    """The class order of a classification run: ``data.classes``, else the dataset's labels sorted."""
    if classes:
        return list(classes)
    found = sorted({str(v) for r in reader.records if (v := r.get_label(label_key)) is not None})
    if len(found) < 2:
        raise ConfigError(f"classification needs at least 2 classes; '{reader.root}' has {found or 'no labels'} "
                          f"under '{label_key}' (set data.label_key, or data.classes)")
    return found
