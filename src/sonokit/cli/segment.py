"""`sonokit segment`: masks and overlays for any images (PNG/JPEG/TIFF/DICOM, any size), CPU by default."""
from __future__ import annotations

from pathlib import Path

import typer

from .options import trust_option


def make_console():
    """The console segment and enhance print to (created when a command runs: no rich import for --help)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)  # lines name paths: never wrapped


def print_notes(plan, console) -> None:
    """The input collector's notes: masks left out, renamed outputs, ignored files."""
    for note in plan.notes:
        console.print(f"note: {note}", markup=False)


def start_batch(images: list[Path], out: Path, console, *, fail_fast: bool):
    """The start of a command over many inputs (segment, enhance): the inputs collected (the output folder
    left out) and their notes printed, the inputs that cannot be read counted as skipped, ``out`` created.

    Returns ``(plan, batch)``: :class:`sonokit.data.inputs.InputPlan` and :class:`sonokit.data.batch.Batch`.
    """
    from ..data.batch import Batch
    from ..data.inputs import collect_inputs
    from ..errors import DataError

    if out.exists() and not out.is_dir():
        raise DataError(f"--out '{out}' is a file; expected a folder for the outputs (the file is left as it is)")
    plan = collect_inputs(images, exclude=[out])
    print_notes(plan, console)
    batch = Batch(fail_fast=fail_fast, report=lambda m: console.print(m, markup=False))
    for path, why in plan.skipped:
        batch.skip(path, why)
    out.mkdir(parents=True, exist_ok=True)
    return plan, batch


def segment_cmd(
    images: list[Path] = typer.Argument(..., help="Image files or folders (PNG, JPEG, BMP, TIFF, DICOM); folders "
                                        "are walked recursively, ground-truth masks beside images (NAME_mask*.png, "
                                        "NAME_Annotation.png) and dataset mask folders are left out."),
    checkpoint: Path = typer.Option(None, "--checkpoint", "-k", help="Checkpoint (.ckpt) from `sonokit train` "
                                    "(default: the shipped model of --task; `sonokit models --pretrained`)."),
    task: str = typer.Option("breast", "--task", help="Without --checkpoint: which shipped model, by task "
                             "(breast | fetal-head) or name (busi-lesion, hc18-head)."),
    out: Path = typer.Option("segmented", "--out", "-o", help="Output folder for NAME_mask.png and NAME_overlay.png."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    threshold: float = typer.Option(0.5, help="Probability threshold for the binary mask."),
    tta: bool = typer.Option(False, "--tta", help="Average with the left-right mirrored prediction (2x slower)."),
    save_prob: bool = typer.Option(False, help="Also write the probability map as NAME_prob.png (x 255)."),
    save_uncertainty: bool = typer.Option(False, "--save-uncertainty", help="Also write the model's uncertainty "
                                          ", false-positive / false-negative correction maps and probability before "
                                          "correction as NAME_uncertainty.png, NAME_fp.png, NAME_fn.png, "
                                          "NAME_initial.png (x 255, original size), "
                                          "when the model returns them (sfrecsam with a corrector)."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first unreadable image instead of "
                                   "skipping it."),
    organ: str = typer.Option(None, "--organ", help="Anatomy-conditioned models (A-ViT encoders): the organ of "
                              "the images, a name of the model's vocabulary, e.g. breast (default: the model "
                              "predicts it)."),
    backend: str = typer.Option("auto", "--backend", help="torch, onnx (the model's graph in ONNX Runtime: pip "
                                "install 'sonokit[onnx]'; exported beside the checkpoint - shipped models: in "
                                "~/.cache/sonokit - and checked against torch on first use; masks only, CPU), or auto: "
                                "onnx when ONNX Runtime is installed, nothing asked for needs torch (--device cuda, "
                                "--tta, --save-uncertainty, --organ) and the graph holds the whole model (not "
                                "SF-RecSAM's corrector), else torch."),
    pixel_size: float = typer.Option(None, "--pixel-size", min=0, help="Pixel size in mm of the inputs (PNG and "
                                     "other files without one; a DICOM's own spacing is used otherwise): areas and "
                                     "head circumferences in mm instead of pixels."),
    threads: int = typer.Option(None, "--threads", min=1, help="CPU threads (default: the cores this process may "
                                "use minus the 1-minute load average, at least 1)."),
    trust: bool = trust_option(),
) -> None:
    """Segment images of any size: each is letterboxed to the model's input size, predicted, and the
    mask mapped back to the original size. Reports the predicted area so empty predictions are visible.

    Large images (above 4096x4096 = 16.8 M pixels) are reduced and their masks upsampled in row chunks (about 3 bytes per pixel).

    The overlay of a large image is written downscaled to at most 2048 px on its long side.

    A bad file (unreadable, empty, NaN pixels) is reported and skipped; the exit code is then 1 (--fail-fast: stop at the first)."""
    from ..inference.backend import check_onnx_request, default_threads, resolve_backend
    from ..inference.files import measures_head, segment_to_files, write_rows

    console = make_console()
    say = lambda m: console.print(m, markup=False)  # noqa: E731
    n_threads = threads or default_threads()
    needs_torch = next((why for why, on in (("--tta", tta), ("--save-uncertainty", save_uncertainty),
                                            ("--organ", organ is not None)) if on), None)
    requested, backend = backend, resolve_backend(backend, device, torch_only=needs_torch)
    if backend == "onnx":
        check_onnx_request(save_uncertainty=save_uncertainty, organ=organ, tta=tta)
    seg = None
    if checkpoint is None:  # a shipped model
        from ..zoo import entry

        e = entry(task, task="segment")
        say(f"model: shipped '{e.name}' ({e.summary.split(':')[0]}; card: sonokit/zoo/cards/{e.card})")
        if organ is not None:
            from ..errors import ConfigError

            raise ConfigError(f"shipped model '{e.name}' takes no --organ; pass --checkpoint of an A-ViT model")
        if backend == "onnx" and device == "cpu":  # graph cached: ONNX Runtime and NumPy, no torch import
            from ..zoo import lite

            seg = lite(e.name, threshold=threshold, threads=n_threads)
        if seg is None:
            from ..zoo import load

            seg = load(e.name, device=device, threshold=threshold, tta=tta, threads=n_threads, backend=backend,
                       log=say)
    else:
        if backend == "onnx" and device == "cpu":  # a graph made earlier: ONNX Runtime and NumPy, no torch import
            from ..inference.lite import lite_segmenter

            seg = lite_segmenter(checkpoint, threshold=threshold, threads=n_threads)
        if seg is None:
            from ..inference import Segmenter

            # auto stays auto: the checkpoint's model decides (torch where its ONNX graph computes less than it)
            ck_backend = "auto" if requested == "auto" and backend == "onnx" else backend
            seg = Segmenter.from_checkpoint(checkpoint, device=device, threshold=threshold, tta=tta, trust=trust,
                                            organ=organ, backend=ck_backend, threads=n_threads, log=say)
    measure_hc = measures_head(seg.hparams)
    plan, batch = start_batch(images, out, console, fail_fast=fail_fast)
    empty, extras, rows = 0, 0, []
    for item in plan.items:
        res = batch.run(item.path, lambda: segment_to_files(seg, item, out, save_prob=save_prob,
                                                            save_uncertainty=save_uncertainty, measure_hc=measure_hc,
                                                            pixel_size=pixel_size))
        if res is not None:
            empty += res.max_prob < threshold
            extras += bool(res.extras)
            rows.append(res.row())
            console.print(res.line(), markup=False)
    if rows:
        write_rows(out / "segmentation.csv", rows)
        say(f"one line per image (size, foreground, area, head circumference): {out / 'segmentation.csv'}")
    console.print(f"{batch.summary()}; masks and overlays in {out}", markup=False)
    if empty:
        console.print(f"[yellow]{empty} of {batch.done} predictions are empty[/] (max probability below {threshold}); "
                      "check that the images resemble the training data, or lower --threshold")
    if save_uncertainty and batch.done and not extras:
        console.print(f"note: --save-uncertainty: model '{seg.hparams.get('model')}' returns no uncertainty or "
                      "correction maps (sfrecsam with a corrector does); only masks and overlays were written",
                      markup=False)
    if batch.failed:
        raise typer.Exit(1)
