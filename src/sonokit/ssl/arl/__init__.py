"""A-ViT's pretraining (Anatomy-aware Representation Learning, ICLR 2026): masked reconstruction + adversarial
+ DINO self-distillation with a gradient-adaptive weight, registered as the SSL method ``arl``."""
from .method import ARLPretraining

__all__ = ["ARLPretraining"]
