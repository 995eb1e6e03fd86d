"""Metrics: pure functions over arrays, aggregated as mean ± std."""
from .quality import cnr, fwhm, gcnr, peak_edge_gradient, point_fwhm, psnr, speckle_snr, ssim
from .segmentation import METRICS, aggregate, hd95, segmentation_metrics

__all__ = [
    "METRICS", "segmentation_metrics", "aggregate", "hd95",
    "psnr", "ssim", "cnr", "gcnr", "speckle_snr", "fwhm", "point_fwhm", "peak_edge_gradient",
]
