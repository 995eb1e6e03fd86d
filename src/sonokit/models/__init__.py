"""Models: encoders (timm CNNs and ViTs), necks, decoders, heads, and the model registry.

Any registered encoder fits any decoder: ``create_model("unet", encoder="vit_small_patch16", img_size=128)``,
``create_model("upernet", encoder="resnet50")``, ``create_model("classifier", encoder="resnet18")``.
"""
from . import avit, sam  # noqa: F401  (register the avit_* encoders, sfrecsam, sam_adapter)
from .builder import MODELS, create_model, encoder_spec, list_models
from .classification import ClassificationModel
from .decoders import DECODERS
from .encoders import ENCODERS, create_encoder, list_encoders, load_encoder_checkpoint
from .necks import NECKS
from .segmentation import SegmentationModel

__all__ = ["DECODERS", "ENCODERS", "MODELS", "NECKS", "ClassificationModel", "SegmentationModel", "create_encoder",
           "create_model", "encoder_spec", "list_encoders", "list_models", "load_encoder_checkpoint"]
