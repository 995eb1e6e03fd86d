"""`sonokit evaluate`: score a checkpoint on a split at original image size."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def evaluate_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-k", help="Checkpoint (.ckpt) from `sonokit train`."),
    split: str = typer.Option("test", "--split", help="Split part to score: test | val | train | all."),
    data: Path = typer.Option(None, "--data", help="Evaluate on another dataset (e.g. out-of-distribution); "
                              "default: the training dataset recorded in the checkpoint."),
    format: str = typer.Option(None, "--format", "-f", help="Format of --data (auto-detected when omitted)."),
    split_file: Path = typer.Option(None, "--split-file", help="Split file for --data (default: the training split)."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder for results (default: RUN/eval next to checkpoints/)."),
    name: str = typer.Option(None, help="Name of this evaluation (default: the split part, or the dataset for --data)."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    threshold: float = typer.Option(0.5, help="Probability threshold for the binary mask."),
    tta: bool = typer.Option(False, "--tta", help="Average with the left-right mirrored prediction (2x slower)."),
) -> None:
    """Evaluate a segmentation checkpoint: Dice, IoU, HD95 (mm when spacing is known), precision, recall,
    per image and mean ± std, on the held-out split."""
    from ..data import open_dataset
    from ..evaluation import evaluate, split_ids
    from ..inference import Segmenter

    seg = Segmenter.from_checkpoint(checkpoint, device=device, threshold=threshold, tta=tta)
    hp = seg.hparams.get("data") or {}
    root = data or hp.get("root")
    fmt = format if data else (format or hp.get("format"))
    reader = open_dataset(root, fmt)
    classes = hp.get("classes")
    sfile = split_file or (None if data else hp.get("split"))
    labels = {r.id: r.label for r in reader.records}
    if split == "all" or sfile is None:
        ids = [i for i in reader.ids if not classes or data or labels.get(i) in classes]
        part = "all"
    else:
        ids = split_ids(sfile, split, reader.ids, None if data else classes, labels)
        part = split
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    out = out or run_dir / "eval"
    nm = name or (part if data is None else f"{reader.name}_{part}")
    res = evaluate(seg, data_root=root, data_format=reader.name, ids=ids, out_dir=out, name=nm)
    t = Table(title=f"{nm}: {res['n']} images of {root}")
    t.add_column("metric")
    t.add_column("mean ± std", justify="right")
    t.add_column("n", justify="right")
    for k, v in res["aggregate"].items():
        unit = f" ({res['hd95_unit']})" if k == "hd95" else ""
        t.add_row(k + unit, f"{v['mean']:.4f} ± {v['std']:.4f}", str(v["n"]))
    console.print(t)
    if res["hd95_undefined"]:
        console.print(f"HD95 undefined (one mask empty) for {res['hd95_undefined']} images")
    if res["skipped"]:
        console.print(f"[yellow]{len(res['skipped'])} samples skipped[/], e.g. {res['skipped'][0]}")
    console.print(f"results in {out}/{nm}.json")
