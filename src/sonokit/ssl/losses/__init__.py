"""SSL losses: PIRL's NCE, the Relation Contrastive Loss and the perceptual loss (pure functions + thin modules)."""
from .nce import estimate_log_z, nce_loss, pirl_loss
from .perceptual import perceptual_loss
from .relation import RelationContrastiveLoss, RelationNetwork, relation_mse

__all__ = ["estimate_log_z", "nce_loss", "pirl_loss", "perceptual_loss", "RelationContrastiveLoss",
           "RelationNetwork", "relation_mse"]
