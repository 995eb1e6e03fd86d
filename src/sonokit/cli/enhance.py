"""`sonokit enhance`: enhanced copies of any images (PNG/JPEG/BMP/TIFF/DICOM, any size), CPU by default.

Outputs, in ``--out``: ``NAME_enhanced.png`` (8-bit gray) per image or DICOM frame (``NAME_fK_enhanced.png``
for frame K of a multi-frame file) and, for DICOM input, ``NAME_enhanced.dcm``: a copy of the input dataset
with the enhanced pixels (all frames) as uncompressed 8-bit MONOCHROME2, a new SOP Instance UID and
``ImageType`` DERIVED (:mod:`sonokit.enhance.files`). Input conversions (RGB -> luma, 16-bit -> [0, 1]) are
those of :func:`sonokit.data.io.read_image` and the DICOM reader. Images no larger than one tile (also those
smaller than a tile) are processed whole; larger ones are tiled with overlap (see
:mod:`sonokit.enhance.inference`). Inputs are collected as for ``sonokit segment``
(:mod:`sonokit.data.inputs`). An unreadable file is reported (named) and skipped; the command then ends with
exit code 1 (``--fail-fast`` stops at the first).
"""
from __future__ import annotations

from itertools import groupby
from pathlib import Path

import typer

from .options import trust_option
from .segment import make_console, start_batch


def enhance_cmd(
    images: list[Path] = typer.Argument(..., help="Image files or folders (PNG, JPEG, BMP, TIFF, DICOM); folders "
                                        "are walked recursively, ground-truth masks left out (as `sonokit segment`)."),
    checkpoint: Path = typer.Option(None, "--checkpoint", "-k", help="Checkpoint (.ckpt) from `sonokit train "
                                    "enhance` (default: the shipped model --model; `sonokit models --pretrained`)."),
    model: str = typer.Option(None, "--model", help="Without --checkpoint: the shipped enhancer, by name or alias "
                              "(default: blind, the blind enhancer; with --refine nllr-wiener: guide, the "
                              "DRUNet-small guide)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for NAME_enhanced.png (and .dcm for DICOM input)."),
    tile: int = typer.Option(256, help="Tile side in pixels for images larger than one tile (a multiple of the "
                                       "model's size multiple: 64 for SCUNet)."),
    overlap: int = typer.Option(64, help="Overlap between tiles in pixels."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first unreadable image instead of skipping it."),
    training_scale: bool = typer.Option(False, "--training-scale", help="Enhance at the pixel scale the model was "
                                        "trained at (downscale to its max_side, enhance, resize back) instead of "
                                        "at the image's own resolution."),
    refine: str = typer.Option("none", "--refine", help="none | nllr-wiener: use the network's output as a guide "
                               "for NLLR + collaborative Wiener filtering of the image (blind; for networks trained as "
                               "denoisers, e.g. configs/denoise_busi_drunet_cpu.yaml; several times slower). See "
                               "sonokit.enhance.hybrid."),
    guide_weight: float = typer.Option(None, "--guide-weight", help="With --refine nllr-wiener: the network's share "
                                       "of the Wiener pilot, in [0, 1] (default: the tuned weight, "
                                       "sonokit.enhance.hybrid.GUIDE_WEIGHT)."),
    backend: str = typer.Option("auto", "--backend", help="torch, onnx (the network's graph in ONNX Runtime: pip "
                                "install 'sonokit[onnx]'; exported and checked against torch on first use; CPU), or "
                                "auto: onnx when ONNX Runtime is installed and --device is cpu, else torch."),
    threads: int = typer.Option(None, "--threads", min=1, help="CPU threads (default: the cores this process may "
                                "use minus the 1-minute load average, at least 1)."),
    trust: bool = trust_option(),
) -> None:
    """Enhance images of any size with a trained enhancement model (deconvolution + denoising)."""
    import torch

    from ..inference.backend import resolve_backend, set_threads

    n_threads = set_threads(threads)
    from ..enhance.files import enhance_fn, enhance_to_files
    from ..enhance.inference import load_enhancer

    console = make_console()
    backend = resolve_backend(backend, device)
    say = lambda m: console.print(m, markup=False)  # noqa: E731
    if checkpoint is None:
        from ..zoo import entry
        from ..zoo import load_enhancer as load_shipped

        e = entry(model or ("guide" if refine == "nllr-wiener" else "blind"), task="enhance")
        say(f"model: shipped '{e.name}' ({e.summary.split(':')[0]}; card: sonokit/zoo/cards/{e.card})")
        net, hp = load_shipped(e.name, device=device, backend=backend, threads=n_threads, log=say)
    else:
        net, hp = load_enhancer(checkpoint, device=device, trust=trust, backend=backend, threads=n_threads, log=say)
    ms = (hp.get("image") or {}).get("max_side")
    if ms and not training_scale:
        console.print(f"[yellow]note:[/] this model was trained on frames downscaled to <= {ms} px; at another "
                      "pixel scale the blur it learned to undo has another size in pixels (--training-scale "
                      "enhances larger images at that scale and resizes the result back)")
    if training_scale and not ms:
        console.print("[yellow]note:[/] this model was trained on frames at their own size; --training-scale changes nothing")
    scale = ms if training_scale else None
    run = enhance_fn(net, tile=tile, overlap=overlap, refine=refine, guide_weight=guide_weight, max_side=scale)
    plan, batch = start_batch(images, out, console, fail_fast=fail_fast)
    with torch.no_grad():
        for path, group in groupby(plan.items, key=lambda it: it.path):
            items = list(group)  # one file: an image, or the frames of a DICOM file
            line = batch.run(path, lambda: enhance_to_files(items, run, out, tile=tile, max_side=scale),
                             count=len(items))
            if line is not None:
                console.print(line, markup=False)
    console.print(f"{batch.summary()}; enhanced images in {out}", markup=False)
    if batch.failed:
        raise typer.Exit(1)
