"""`sonokit data check`, `split`, `pin` and `shard`."""
from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(help="Inspect datasets and make split files.", no_args_is_help=True, rich_markup_mode=None)

FORMAT_HELP = "Dataset layout: busi | udiat | breast | hc18 | ddti | folder | dicom (auto-detected when omitted)."


def _console():
    from rich.console import Console

    return Console()


def _progress_check(reader, near_threshold: int):
    from rich.console import Console
    from rich.progress import Progress

    from ..data.check import check_dataset

    console = _console()

    with Progress(console=Console(stderr=True), transient=True, disable=not console.is_terminal) as prog:
        task = prog.add_task(f"reading {len(reader)} images", total=len(reader))
        return check_dataset(reader, near_threshold=near_threshold,
                             progress=lambda i, n: prog.update(task, completed=i))


@app.command("check")
def check(
    path: Path = typer.Argument(..., help="Dataset folder (or a DICOM file)."),
    format: str = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    near_threshold: int = typer.Option(6, help="Near-duplicate threshold in pHash bits (of 64)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the full report as JSON here."),
    max_problems: int = typer.Option(None, help="Print at most this many problems (default: all; all go to --json)."),
) -> None:
    """Count images per class and sizes, and list every problem with its file.

    Problems: unreadable file, mask/image size mismatch, missing mask, non-binary mask, exact and near
    duplicates. Exit code 0 when every image is readable, 1 otherwise.
    """
    from rich.table import Table

    from ..data import open_dataset

    console = _console()
    reader = open_dataset(path, format)
    rep = _progress_check(reader, near_threshold)
    s = rep.summary()
    t = Table(title=f"{reader.name} dataset at {path}")
    t.add_column("class")
    t.add_column("images", justify="right")
    for k, v in sorted(rep.classes.items()):
        t.add_row(k, str(v))
    t.add_row("[bold]total readable", f"[bold]{rep.n_readable} of {rep.n_images}")
    console.print(t)
    if s["height_min_median_max"]:
        h, w = s["height_min_median_max"], s["width_min_median_max"]
        console.print(f"height min/median/max {h[0]}/{h[1]}/{h[2]} px; width {w[0]}/{w[1]}/{w[2]} px")
    console.print(f"colour images (converted to gray): {len(rep.colour_images)}")
    console.print(f"exact duplicate groups: {len(rep.exact_duplicates)}; near-duplicate groups: "
                  f"{len(rep.near_duplicates)} covering {s['images_in_near_duplicate_groups']} images "
                  f"(pHash within {near_threshold} bits)")
    for g in rep.exact_duplicates:
        console.print(f"  exact duplicate: {' == '.join(g)}")
    console.print(f"[bold]{len(rep.problems)} problems[/]")
    shown = rep.problems if max_problems is None else rep.problems[:max_problems]
    for f, m in shown:
        console.print(f"  {f}: {m}", highlight=False)
    if len(shown) < len(rep.problems):
        console.print(f"  ... {len(rep.problems) - max_problems} more (use --json to see all)")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(s, indent=1))
    raise typer.Exit(0 if rep.ok else 1)


@app.command("split")
def split(
    path: Path = typer.Argument(..., help="Dataset folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Split JSON file to write (e.g. splits/busi_v1.json)."),
    format: str = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    val: float = typer.Option(0.1, help="Validation fraction of all images."),
    test: float = typer.Option(0.2, help="Held-out test fraction of all images."),
    seeds: list[int] = typer.Option([0, 1, 2], "--seeds", help="Seeds for the nested label-fraction subsets (repeatable)."),
    fractions: list[float] = typer.Option([0.2, 0.5, 1.0], "--fractions", help="Label fractions of train (repeatable)."),
    split_seed: int = typer.Option(0, help="Seed of the train/val/test partition itself."),
    near_threshold: int = typer.Option(6, help="Near-duplicate threshold in pHash bits (of 64)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing split file (models trained with it "
                               "record its hash and will refuse to be evaluated on the new one)."),
) -> None:
    """Write a versioned, stratified, duplicate- and group-aware train/val/test split with nested
    label-fraction subsets (20% ⊂ 50% ⊂ 100%) of train per seed, pinned to the files' contents."""
    from ..data import open_dataset
    from ..data.pin import pin_split
    from ..data.splits import save_split, split_from_report
    from ..errors import DataError

    console = _console()
    if out.exists() and not force:
        raise DataError(f"split file '{out}' already exists; models trained with it record its hash, and replacing "
                        "it changes their test set. Choose another --out, or pass --force to replace it")
    reader = open_dataset(path, format)
    rep = _progress_check(reader, near_threshold)
    sp = split_from_report(rep, reader, val=val, test=test, seeds=tuple(seeds), fractions=tuple(fractions),
                           split_seed=split_seed, near_threshold=near_threshold)
    save_split(pin_split(sp, reader), out, overwrite=force)
    console.print(f"wrote {out}: train {len(sp['train'])}, val {len(sp['val'])}, test {len(sp['test'])} "
                  f"({len(sp['duplicate_groups'])} duplicate groups kept together)")
    for part in ("train", "val", "test"):
        console.print(f"  {part}: {sp['counts'][part]}")
    excluded = sp["params"].get("excluded_unreadable") or []
    if excluded:
        console.print(f"  left out {len(excluded)} unreadable image(s) (see `sonokit data check {path}`): "
                      + ", ".join(excluded[:10]) + (", ..." if len(excluded) > 10 else ""), highlight=False)


@app.command("pin")
def pin(
    split_file: Path = typer.Argument(..., help="An existing split file (e.g. splits/busi_v1.json)."),
    path: Path = typer.Option(..., "--data", help="The dataset folder the split belongs to."),
    format: str = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    force: bool = typer.Option(False, "--force", help="Re-pin a split whose pinned files changed (after checking "
                               "why they changed)."),
) -> None:
    """Add file digests to a split file written before splits were pinned (the assignment is unchanged), or
    check a pinned one: lists every image whose file changed since the split was written."""
    from ..data import open_dataset
    from ..data.pin import changed_files, pin_split
    from ..data.splits import HASHED_KEYS, load_split, save_split, verify_split
    from ..errors import DataError

    console = _console()
    reader = open_dataset(path, format)
    sp = load_split(split_file)
    verify_split(sp, reader.ids, str(split_file))
    ids = [i for p in ("train", "val", "test") for i in sp[p]]
    if sp["pinned"]:
        changed = changed_files(sp, reader, ids)
        if not changed:
            console.print(f"{split_file}: all {len(ids)} files match their pinned digests")
            return
        for _, what in changed[:20]:
            console.print(f"  {what}", highlight=False)
        if not force:
            raise DataError(f"{len(changed)} file(s) of '{split_file}' changed since it was pinned (listed above); "
                            "pass --force to pin the current files")
    keep = {k: v for k, v in sp.items() if k not in ("hash", "pinned")}
    before = {k: keep.get(k) for k in HASHED_KEYS if k != "files"}
    pinned = pin_split(keep, reader)
    assert {k: pinned.get(k) for k in before} == before  # the assignment itself never changes
    save_split(pinned, split_file, overwrite=True)
    console.print(f"pinned {len(ids)} files in {split_file}")


@app.command("shard")
def shard(
    sources: list[str] = typer.Argument(..., metavar="SOURCE", help="Dataset folders, each FOLDER or NAME=FOLDER; NAME (1-24 letters, "
                                        "digits, _ or -) starts the keys of its samples (default: the folder's name)."),
    out: Path = typer.Option(..., "--out", "-o", help="Shard folder: new or empty, or one to resume (same arguments)."),
    format: str = typer.Option(None, "--format", "-f", help=FORMAT_HELP + " Applies to every source."),
    shard_size: int = typer.Option(1000, "--shard-size", help="Samples per shard (the last shard holds the rest)."),
    max_side: int = typer.Option(None, "--max-side", help="Downscale images whose long side exceeds this many pixels."),
    organs: str = typer.Option(None, "--organs", help="Organ vocabulary, comma-separated, e.g. breast,thyroid "
                               "(default: sonokit's 16 organs); every source's anatomy must be in it."),
    split: list[str] = typer.Option([], "--split", help="NAME=SPLIT.json[:PART]: only that part (default train) of "
                                    "the source NAME, so pretraining never sees its val / test images (repeatable)."),
) -> None:
    """Write datasets as WebDataset tar shards for pretraining at scale: shard-NNNNNN.tar (per sample KEY.png and
    KEY.json: source, id, organ, label, spacing) and the manifest shards.json. Deterministic (same inputs, same
    bytes); an interrupted run continues where it stopped when rerun. Unreadable images are skipped and listed
    in the manifest; exit code 1 when any was."""
    from ..data import open_dataset
    from ..data.shards import source_name, write_shards
    from ..errors import ConfigError
    from .options import err

    named: dict = {}
    for spec in sources:
        name, sep, folder = spec.partition("=")
        if not sep or Path(spec).exists():
            name, folder = source_name(spec), spec
        if name in named:
            raise ConfigError(f"two sources are named '{name}'; name them apart with NAME=FOLDER")
        named[name] = open_dataset(Path(folder), format)
    for spec in split:
        name, sep, rest = spec.partition("=")
        path, _, part = rest.rpartition(":") if rest.rsplit(":", 1)[-1] in ("train", "val", "test") else (rest, "", "train")
        if not sep or name not in named:
            raise ConfigError(f"--split '{spec}': expected NAME=SPLIT.json[:PART] with NAME one of {sorted(named)}")
        from ..data.splits import load_split, select_ids, verify_split

        sp = load_split(path)
        verify_split(sp, named[name].ids, path)
        named[name].restrict(select_ids(sp, part or "train"))
    vocab = [o.strip() for o in organs.split(",") if o.strip()] if organs is not None else None
    if organs is not None and not vocab:
        raise ConfigError(f"--organs '{organs}' names no organ; expected comma-separated names, e.g. breast,thyroid")
    man = write_shards(named, out, shard_size=shard_size, max_side=max_side, organs=vocab, log=err)
    for s in man["skipped"][:10]:
        err(f"  skipped {s['source']}:{s['id']}: {s['error']}")
    if len(man["skipped"]) > 10:
        err(f"  ... {len(man['skipped']) - 10} more (listed in {out / 'shards.json'})")
    raise typer.Exit(1 if man["skipped"] else 0)
