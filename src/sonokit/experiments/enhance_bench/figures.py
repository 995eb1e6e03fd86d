"""The bench report's figures, each returned as an HTML section (a heading and an inline PNG)."""
from __future__ import annotations

import html
import math

import numpy as np

from ...reports.figures import figure_png
from .config import NoiseSetting
from .methods import Method, apply_at_scale, degrade_frame, setting_name

FONT, SMALL = 8, 7  # titles and axis labels; tick labels and legends


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def noise_figure(frame_id: str, ref: np.ndarray, methods: list[Method], settings: list[NoiseSetting],
                 seeds: list[int], *, dynamic_range_db: float) -> str:
    """One row per noise setting (degraded with ``seeds[k]``): reference, degraded, every method; each image's
    PSNR against the reference (dB) in its title."""
    from ...metrics.quality import psnr

    plt = _pyplot()
    cols = ["reference", "degraded"] + [m.name for m in methods]
    fig, axes = plt.subplots(len(settings), len(cols), figsize=(2.1 * len(cols), 2.2 * len(settings)), squeeze=False)
    for k, (s, seed) in enumerate(zip(settings, seeds)):
        x = degrade_frame(ref, s, seed, dynamic_range_db=dynamic_range_db)
        ims = [ref, x] + [np.asarray(m.fn(x), np.float32) for m in methods]
        for j, (c, im) in enumerate(zip(cols, ims)):
            ax = axes[k, j]
            ax.imshow(im, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(c if j == 0 else f"{c}\n{psnr(im, ref):.1f} dB", fontsize=FONT)
        axes[k, 0].set_ylabel(setting_name(s), fontsize=FONT)
    return (f"<h2>Before / after: noise study (frame {html.escape(frame_id)})</h2>"
            f"<img src='{figure_png(fig)}' alt='noise study examples'>")


def psf_figure(clean: np.ndarray, examples: dict[str, np.ndarray], ph: dict, *, blur_sigma: float) -> str:
    """Top: the phantom and every method's output (``examples``) at the strongest blur. Bottom: the lateral
    profile through the centre point target, the method's against the phantom's, in mm from the point."""
    plt = _pyplot()
    names = list(examples)
    fig, axes = plt.subplots(2, len(names) + 1, figsize=(2.3 * (len(names) + 1), 5.2), squeeze=False)
    r, c = ph["peaks"][4]
    lo, hi = max(0, c - 20), c + 21
    ref = clean[r, lo:hi]
    offset_mm = (np.arange(lo, lo + len(ref)) - c) * ph["spacing"][1]
    for j, (n, im) in enumerate([("phantom", clean)] + [(n, examples[n]) for n in names]):
        axes[0, j].imshow(im, cmap="gray", vmin=0, vmax=1)
        axes[0, j].set_title(n, fontsize=FONT)
        axes[0, j].set_xticks([]), axes[0, j].set_yticks([])
        ax = axes[1, j]
        ax.plot(offset_mm, ref, "k--", lw=0.8, label="phantom")
        if j > 0:
            ax.plot(offset_mm, im[r, lo:hi], "r", lw=1, label=n)
        ax.set_ylim(0, 1.05)
        ax.set_title("lateral profile, centre point", fontsize=SMALL)
        ax.set_xlabel("lateral offset (mm)", fontsize=SMALL)
        ax.tick_params(labelsize=SMALL)
        ax.legend(fontsize=SMALL - 1, loc="lower center", framealpha=0.8)
    axes[1, 0].set_ylabel("display intensity (0-1)", fontsize=SMALL)
    fig.tight_layout()
    return (f"<h2>PSF study at the strongest blur (σ = {blur_sigma:g} px)</h2>"
            f"<img src='{figure_png(fig)}' alt='PSF study'>")


def plug_figure(name: str, sample, plug: list[Method], segm) -> str:
    """``sample`` (a :class:`sonokit.data.Sample`) through every plug-and-play method, with the segmentation
    model's prediction (red) and the ground truth (green) outlined, and the Dice in each title."""
    from matplotlib.lines import Line2D

    from ...metrics.segmentation import segmentation_metrics

    plt = _pyplot()
    s = sample
    fig, axes = plt.subplots(1, len(plug), figsize=(2.6 * len(plug), 2.8), squeeze=False)
    for j, m in enumerate(plug):
        im = apply_at_scale(m, s.image[0])
        pred = segm.predict(im) >= segm.threshold
        dice = segmentation_metrics(pred, s.mask[0], s.spacing)["dice"] if s.mask is not None else math.nan
        ax = axes[0, j]
        ax.imshow(im, cmap="gray", vmin=0, vmax=1)
        if s.mask is not None:
            ax.contour(s.mask[0], levels=[0.5], colors="lime", linewidths=0.8)
        ax.contour(pred, levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(f"{m.name}: Dice {dice:.3f}", fontsize=FONT)
        ax.set_xticks([]), ax.set_yticks([])
    handles = ([Line2D([], [], color="lime", lw=1.5, label="ground truth")] if s.mask is not None else []) + [
        Line2D([], [], color="red", lw=1.5, label="prediction")]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=FONT, frameon=False,
               bbox_to_anchor=(0.5, 0.08))
    return (f"<h2>Plug-and-play on {html.escape(name)}: raw vs enhanced ({html.escape(s.id)})</h2>"
            "<p>Ground truth green, prediction red.</p>"
            f"<img src='{figure_png(fig)}' alt='plug-and-play {html.escape(name)}'>")
