"""Lightning tasks (thin): they hold a model from the registry, a loss and an optimiser schedule."""
from .checkpoint import AtomicCheckpointIO
from .enhance import EnhanceTask
from .pretrain import PretrainTask
from .segment import SegmentationTask

__all__ = ["SegmentationTask", "PretrainTask", "EnhanceTask", "AtomicCheckpointIO"]
