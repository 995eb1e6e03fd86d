"""`sonokit evaluate`: score a checkpoint on a split at original image size (a thin shell over
`sonokit.evaluate`)."""
from __future__ import annotations

from pathlib import Path

import typer

from .options import say, trust_option


def evaluate_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-k", help="Checkpoint (.ckpt) from `sonokit train`."),
    split: str = typer.Option("test", "--split", help="Split part to score: test | val | train | all (every image)."),
    data: Path = typer.Option(None, "--data", help="Evaluate on another dataset (e.g. out-of-distribution); "
                              "default: the training dataset recorded in the checkpoint."),
    format: str = typer.Option(None, "--format", "-f", help="Format of --data (auto-detected when omitted)."),
    split_file: Path = typer.Option(None, "--split-file", help="Split file for --data (default: the training split)."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder for results (default: RUN/eval next to checkpoints/)."),
    name: str = typer.Option(None, help="Name of this evaluation (default: the split part; for --data, "
                             "FOLDER_part)."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    threshold: float = typer.Option(0.5, help="Probability threshold for the binary mask (segmentation)."),
    tta: bool = typer.Option(False, "--tta", help="Average with the left-right mirrored prediction (2x slower)."),
    allow_changed_data: bool = typer.Option(False, "--allow-changed-data", help="Score even when the split file or "
                                            "images changed since training, or test images were training images "
                                            "(the result records the warning)."),
    save_overlays: bool = typer.Option(False, "--save-overlays", help="Segmentation: also write "
                                       "NAME_overlays/ID.png, the image | ground truth (green) | prediction (red)."),
    save_uncertainty: bool = typer.Option(False, "--save-uncertainty", help="Segmentation: also write the "
                                          "model's uncertainty, FP / FN correction maps and mask probability before "
                                          "correction (sfrecsam with a corrector) as NAME_uncertainty/ID.png, "
                                          "NAME_fp/ID.png, NAME_fn/ID.png, NAME_initial/ID.png (x 255)."),
    organ: str = typer.Option(None, "--organ", help="Anatomy-conditioned models (A-ViT encoders): the organ of "
                              "every image, a name of the model's vocabulary, or 'dataset' for the dataset's own "
                              "anatomy (default: the model predicts it)."),
    trust: bool = trust_option(),
) -> None:
    """Evaluate a checkpoint on held-out data. Segmentation: Dice, IoU, HD95 (mm when spacing is known),
    precision, recall per image and mean ± std. Classification: accuracy, balanced accuracy, AUROC,
    per-class recall, confusion matrix. Refuses data that changed since training."""
    from rich.console import Console
    from rich.table import Table

    from ..evaluation import evaluate

    res = evaluate(checkpoint, split=split, data=data, format=format, split_file=split_file, out=out, name=name,
                   device=device, threshold=threshold, tta=tta, allow_changed_data=allow_changed_data, trust=trust,
                   save_overlays=save_overlays, save_uncertainty=save_uncertainty, organ=organ, log=say)
    console = Console()
    t = Table(title=f"{res['name']}: {res['n']} images of {res['data_root']}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    if res["task"] == "segment":
        t.add_column("n", justify="right")
        for k, v in res["aggregate"].items():
            unit = f" ({res['hd95_unit']})" if k == "hd95" else ""
            t.add_row(k + unit, f"{v['mean']:.4f} ± {v['std']:.4f}", str(v["n"]))
    else:
        for k, v in res["metrics"].items():
            t.add_row(k, f"{v:.4f}")
        for c, v in res["recall"].items():
            t.add_row(f"recall {c}", f"{v:.4f}")
    console.print(t)
    if res["task"] == "classify":
        console.print("confusion (rows: true " + ", ".join(res["classes"]) + "): " + str(res["confusion"]))
    if res.get("hd95_undefined"):
        console.print(f"HD95 undefined (one mask empty) for {res['hd95_undefined']} images")
    if res["skipped"]:
        console.print(f"{len(res['skipped'])} samples skipped, e.g. {res['skipped'][0]}", markup=False)
    console.print(f"results in {res['out']}", markup=False)
