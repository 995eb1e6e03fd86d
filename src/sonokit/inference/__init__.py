"""Inference with trained models: read a checkpoint safely, rebuild its model, predict any image size."""
from .api import predict
from .checkpoint import build_model, model_weights, read_task_checkpoint, task_of, torch_device
from .classifier import Classifier
from .segmenter import Segmenter

__all__ = ["predict", "Segmenter", "Classifier", "read_task_checkpoint", "build_model", "model_weights", "task_of", "torch_device"]
