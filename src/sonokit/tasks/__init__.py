"""Lightning tasks (thin): the supervised contract (segmentation, classification), pretraining methods'
base class, and enhancement. Each holds a registered model, its losses and its optimiser schedule."""
from .classify import ClassificationTask
from .enhance import EnhanceTask
from .pretrain import PretrainMethod
from .segment import SegmentationTask
from .supervised import SupervisedTask

__all__ = ["SupervisedTask", "SegmentationTask", "ClassificationTask", "PretrainMethod", "EnhanceTask"]
