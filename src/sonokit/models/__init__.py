"""Models: encoders (timm), decoders, heads, and the model registry."""
from .encoders import ENCODERS, create_encoder, list_encoders
from .segmentation import MODELS, SegmentationModel, create_model, list_models, load_encoder_checkpoint

__all__ = ["MODELS", "ENCODERS", "SegmentationModel", "create_model", "list_models", "create_encoder",
           "list_encoders", "load_encoder_checkpoint"]
