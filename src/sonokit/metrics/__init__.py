"""Metrics: pure functions over arrays, aggregated as mean ± std."""
from .classification import auroc_binary, classification_metrics
from .quality import cnr, fwhm, gcnr, peak_edge_gradient, point_fwhm, psnr, psnr_batch, speckle_snr, ssim
from .segmentation import METRICS, aggregate, binary_overlap, hd95, segmentation_metrics

__all__ = [
    "METRICS", "segmentation_metrics", "binary_overlap", "aggregate", "hd95", "classification_metrics",
    "auroc_binary", "psnr", "psnr_batch", "ssim", "cnr", "gcnr", "speckle_snr", "fwhm", "point_fwhm",
    "peak_edge_gradient",
]
