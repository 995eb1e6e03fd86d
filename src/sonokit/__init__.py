"""sonokit: ultrasound-native deep learning.

The public API is small; everything else lives in the subpackages (``sonokit.data``, ``sonokit.models``,
``sonokit.physics``, ``sonokit.metrics``, ``sonokit.tasks``, ``sonokit.reports``).
"""
__version__ = "0.1.0"

from .data import Sample, open_dataset  # noqa: E402
from .evaluation import evaluate  # noqa: E402
from .inference import Segmenter  # noqa: E402
from .metrics import segmentation_metrics  # noqa: E402
from .models import create_model, list_models  # noqa: E402
from .physics import simulate_phantom  # noqa: E402
from .reports import build_report  # noqa: E402
from .tasks import SegmentationTask  # noqa: E402

__all__ = ["__version__", "Sample", "open_dataset", "create_model", "list_models", "SegmentationTask", "Segmenter",
           "evaluate", "segmentation_metrics", "simulate_phantom", "build_report"]
