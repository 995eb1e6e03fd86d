"""`sonokit enhance`: enhanced copies of any images (PNG/JPEG/BMP/TIFF/DICOM, any size), CPU by default.

Outputs, in ``--out``: ``NAME_enhanced.png`` (8-bit gray) per image or DICOM frame (``NAME_fK_enhanced.png``
for frame K of a multi-frame file) and, for DICOM input, ``NAME_enhanced.dcm``: a copy of the input dataset
with the enhanced pixels (all frames) as uncompressed 8-bit MONOCHROME2, a new SOP Instance UID and
``ImageType`` DERIVED. Input conversions (RGB -> luma, 16-bit -> [0, 1]) are those of
:func:`sonokit.data.io.read_image` and the DICOM reader. Images no larger than one tile (also those smaller
than a tile) are processed whole; larger ones are tiled with overlap (see :mod:`sonokit.enhance.inference`).
An unreadable file is reported (named) and skipped; the command then fails at the end, listing them
(``--fail-fast`` stops at the first).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.console import Console

from .segment import collect_files

console = Console()


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8 with rounding (as :func:`sonokit.data.io.write_png`)."""
    return np.clip(np.round(np.asarray(image, np.float64) * 255.0), 0, 255).astype(np.uint8)


def write_enhanced_dicom(src: Path, frames: list[np.ndarray], out: Path) -> Path:
    """Copy DICOM ``src`` with its pixels replaced by ``frames`` ((H, W) floats in [0, 1]) as 8-bit MONOCHROME2."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = pydicom.dcmread(src)
    arr = np.stack([to_uint8(f) for f in frames])  # (F, H, W) uint8
    for kw in ("PlanarConfiguration", "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
               "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData",
               "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData", "PaletteColorLookupTableUID",
               "WindowCenter", "WindowWidth", "RescaleIntercept", "RescaleSlope", "RescaleType", "VOILUTSequence",
               "ModalityLUTSequence", "ICCProfile"):
        if kw in ds:
            delattr(ds, kw)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.Rows, ds.Columns = int(arr.shape[1]), int(arr.shape[2])
    if len(frames) > 1 or "NumberOfFrames" in ds:
        ds.NumberOfFrames = len(frames)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = (arr if len(frames) > 1 else arr[0]).tobytes()
    ds["PixelData"].VR = "OB"
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = "enhanced by sonokit (blind enhancement network)"
    ds.LossyImageCompression = "00"
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return out


def enhance_cmd(
    images: list[Path] = typer.Argument(..., help="Image files or folders (PNG, JPEG, BMP, TIFF, DICOM)."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-k", help="Checkpoint (.ckpt) from `sonokit train enhance`."),
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
) -> None:
    """Enhance images of any size with a trained enhancement model (deconvolution + denoising)."""
    import torch

    from ..data.datasets.dicom import _frames, _is_dicom
    from ..data.io import read_image, write_png
    from ..enhance.inference import at_scale, enhance_image, load_enhancer
    from ..errors import ConfigError, DataError

    net, hp = load_enhancer(checkpoint, device=device)
    m = net.multiple
    if tile < 1 or tile % m:
        raise ConfigError(f"--tile {tile} must be a positive multiple of {m} for model '{hp['model']}'; "
                          f"try --tile {max(m, (tile // m) * m)}")
    if not 0 <= overlap < tile:
        raise ConfigError(f"--overlap must be in [0, tile) = [0, {tile}); found {overlap}")
    ms = (hp.get("image") or {}).get("max_side")
    if ms and not training_scale:
        console.print(f"[yellow]note:[/] this model was trained on frames downscaled to <= {ms} px; at another "
                      "pixel scale the blur it learned to undo has another size in pixels (--training-scale "
                      "enhances larger images at that scale and resizes the result back)")
    if training_scale and not ms:
        console.print("[yellow]note:[/] this model was trained on frames at their own size; --training-scale changes nothing")
    scale = ms if training_scale else None
    if refine not in ("none", "nllr-wiener"):
        raise ConfigError(f"--refine must be none or nllr-wiener, found '{refine}'")
    if guide_weight is None:
        from ..enhance.hybrid import GUIDE_WEIGHT

        guide_weight = GUIDE_WEIGHT
    if not 0 <= guide_weight <= 1:
        raise ConfigError(f"--guide-weight must be in [0, 1], found {guide_weight}")
    if refine == "nllr-wiener":
        from ..enhance.hybrid import GuidedNLLRWiener

        fn = GuidedNLLRWiener(net, guide_weight=guide_weight, tile=tile, overlap=overlap)
    else:
        def fn(x):
            return enhance_image(net, x, tile=tile, overlap=overlap)

    def run(im):
        return at_scale(fn, im, scale)
    torch.set_grad_enabled(False)
    out.mkdir(parents=True, exist_ok=True)
    failed: list[tuple[Path, str]] = []
    n = 0
    for f in collect_files(images):
        try:
            if _is_dicom(f):
                frames = _frames(f)[0]  # (F, H, W) float32 [0, 1]
                outs = []
                for k, fr in enumerate(frames):
                    if not np.isfinite(fr).all():
                        raise DataError(f"DICOM '{f}' frame {k} holds NaN/Inf pixels; expected finite values")
                    outs.append(run(fr))
                    name = f.stem if len(frames) == 1 else f"{f.stem}_f{k}"
                    write_png(out / f"{name}_enhanced.png", outs[-1])
                write_enhanced_dicom(f, outs, out / f"{f.stem}_enhanced.dcm")
                console.print(f"{f.name}: {len(frames)} frame(s) of {frames.shape[2]}x{frames.shape[1]} px -> "
                              f"{f.stem}_enhanced.dcm")
            else:
                img, info = read_image(f)
                if not np.isfinite(img).all():
                    raise DataError(f"image '{f}' holds NaN/Inf pixels; expected finite values")
                y = run(img)
                write_png(out / f"{f.stem}_enhanced.png", y)
                notes = [k for k in ("colour", "bit_depth") if k in info]
                console.print(f"{f.name}: {img.shape[1]}x{img.shape[0]} px"
                              + (" (tiled)" if min(max(img.shape), scale or max(img.shape)) > tile else "")
                              + (" (converted: " + ", ".join({"colour": "RGB to gray (luma)",
                                                              "bit_depth": f"{info.get('bit_depth')}-bit to [0, 1]"}[k]
                                                             for k in notes) + ")" if notes else ""))
            n += 1
        except (DataError, ValueError) as e:
            msg = str(e) if str(f) in str(e) else f"'{f}': {e}"
            if fail_fast:
                raise DataError(msg) from None
            console.print(f"[red]failed[/] {msg}")
            failed.append((f, msg))
    console.print(f"wrote {n} enhanced image(s) to {out}")
    if failed:
        raise DataError(f"{len(failed)} input(s) could not be enhanced: " + "; ".join(m for _, m in failed[:5]))
