"""`sonokit simulate phantom`."""
from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Generate synthetic ultrasound data with sonokit's physics simulator.", no_args_is_help=True, rich_markup_mode=None)


@app.command("phantom")
def phantom(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (folder layout: images/, masks/, labels.csv)."),
    n: int = typer.Option(100, "--n", help="Number of images."),
    size: int = typer.Option(160, help="Image side in pixels."),
    seed: int = typer.Option(0, help="Seed; the same seed reproduces every image byte for byte."),
    pixel_mm: float = typer.Option(0.2, help="Pixel spacing in mm."),
) -> None:
    """B-mode phantom: point scatterers, pulse-echo PSF, envelope detection, log compression; one hypo- or
    hyperechoic lesion of random shape per image with its exact mask."""
    from ..physics import simulate_phantom

    simulate_phantom(out, n=n, size=size, seed=seed, pixel_mm=pixel_mm)
    print(f"wrote {n} phantom images ({size}x{size} px, {pixel_mm} mm/px) to {out}")
