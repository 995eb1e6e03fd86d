"""Metrics: pure functions over arrays, aggregated as mean ± std."""
from .segmentation import METRICS, aggregate, hd95, segmentation_metrics

__all__ = ["METRICS", "segmentation_metrics", "aggregate", "hd95"]
