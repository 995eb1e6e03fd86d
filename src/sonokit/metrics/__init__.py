"""Metrics: pure functions over arrays, aggregated as mean ± std.

Names are imported on first use (PEP 562), so ``sonokit.metrics.ellipse`` (head circumference, used by
``sonokit segment``) loads without the segmentation metrics' MONAI/torch or the quality metrics' scikit-image."""
from __future__ import annotations

from ..lazy import lazy_getattr

_NAMES = {
    **dict.fromkeys(("auroc_binary", "classification_metrics"), ".classification"),
    **dict.fromkeys(("cnr", "fwhm", "gcnr", "peak_edge_gradient", "point_fwhm", "psnr", "psnr_batch", "speckle_snr",
                     "ssim"), ".quality"),
    **dict.fromkeys(("METRICS", "aggregate", "binary_overlap", "hd95", "segmentation_metrics"), ".segmentation"),
}

__all__ = list(_NAMES)


__getattr__ = lazy_getattr(__name__, _NAMES, globals())
