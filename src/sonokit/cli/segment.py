"""`sonokit segment`: masks and overlays for any images (PNG/JPEG/TIFF/DICOM, any size), CPU by default."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.console import Console

console = Console()


def collect_files(paths: list[Path]) -> list[Path]:
    """Files named on the command line plus every image / DICOM file under the named folders (sorted)."""
    from ..data.datasets.dicom import _is_dicom
    from ..data.io import IMAGE_SUFFIXES
    from ..errors import DataError

    files: list[Path] = []
    for p in paths:
        if not p.exists():
            raise DataError(f"input '{p}' does not exist")
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and (q.suffix.lower() in IMAGE_SUFFIXES or _is_dicom(q)))
            if not found:
                raise DataError(f"folder '{p}' holds no images; expected {', '.join(IMAGE_SUFFIXES)} or DICOM files")
            files.extend(found)
        else:
            files.append(p)
    return files


def _inputs(paths: list[Path]):
    """Yield (name, image (H, W) float, spacing) for files, folders and DICOM (every frame)."""
    from ..data.datasets.dicom import DicomReader, _is_dicom
    from ..data.io import read_image

    for f in collect_files(paths):
        if _is_dicom(f):
            r = DicomReader(f)
            for rec in r.records:
                s = r.load(rec)
                yield rec.id.replace("#", "_f"), s.image[0], s.spacing
        else:
            img, _ = read_image(f)
            yield f.stem, img, None


def overlay(image: np.ndarray, mask: np.ndarray, color=(1.0, 0.2, 0.2), alpha: float = 0.35) -> np.ndarray:
    """(H, W) gray + (H, W) bool -> (H, W, 3) uint8 with the mask tinted and its outline drawn."""
    from scipy import ndimage

    rgb = np.repeat(image[..., None], 3, axis=-1).astype(np.float32)
    c = np.array(color, np.float32)
    rgb[mask] = (1 - alpha) * rgb[mask] + alpha * c
    edge = mask & ~ndimage.binary_erosion(mask, iterations=max(1, round(max(mask.shape) / 300)))
    rgb[edge] = c
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def segment_cmd(
    images: list[Path] = typer.Argument(..., help="Image files or folders (PNG, JPEG, BMP, TIFF, DICOM)."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-k", help="Checkpoint (.ckpt) from `sonokit train`."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for NAME_mask.png and NAME_overlay.png."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    threshold: float = typer.Option(0.5, help="Probability threshold for the binary mask."),
    tta: bool = typer.Option(False, "--tta", help="Average with the left-right mirrored prediction (2x slower)."),
    save_prob: bool = typer.Option(False, help="Also write the probability map as NAME_prob.png."),
) -> None:
    """Segment images of any size: each is letterboxed to the model's input size, predicted, and the
    mask mapped back to the original size. Reports the predicted area so empty predictions are visible."""
    from PIL import Image

    from ..data.io import write_png
    from ..inference import Segmenter

    seg = Segmenter.from_checkpoint(checkpoint, device=device, threshold=threshold, tta=tta)
    out.mkdir(parents=True, exist_ok=True)
    n = empty = 0
    for name, img, spacing in _inputs(images):
        prob = seg.predict(img)
        mask = prob >= threshold
        write_png(out / f"{name}_mask.png", mask.astype(np.uint8))
        Image.fromarray(overlay(img, mask)).save(out / f"{name}_overlay.png")
        if save_prob:
            write_png(out / f"{name}_prob.png", prob)
        area = float(mask.mean())
        n += 1
        empty += area == 0
        extra = f", {mask.sum() * spacing[0] * spacing[1]:.1f} mm²" if spacing else ""
        console.print(f"{name}: {img.shape[1]}x{img.shape[0]} px, foreground {100 * area:.2f}%{extra}, "
                      f"max probability {prob.max():.3f}")
    console.print(f"wrote {n} masks and overlays to {out}")
    if empty:
        console.print(f"[yellow]{empty} of {n} predictions are empty[/] (max probability below {threshold}); "
                      "check that the images resemble the training data, or lower --threshold")
