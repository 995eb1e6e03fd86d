"""A-ViT (Anatomy-aware Representation Learning for Medical Ultrasound, ICLR 2026): the ACDT block, the A-ViT
backbone, and its registered encoders ``avit_{tiny,small,base}_patch16`` (any sonokit decoder or classifier
head fits them; they take the batch's ``organ``)."""
from .acdt import ACDTBlock, OffsetNet, deformable_sample
from .encoder import AVIT_VARIANTS, AViTEncoder
from .model import AViT, acdt_indices

__all__ = ["ACDTBlock", "AVIT_VARIANTS", "AViT", "AViTEncoder", "OffsetNet", "acdt_indices", "deformable_sample"]
