"""Self-supervised pretraining of encoders (Ellis et al. 2025): PIRL, Relation Contrastive Loss, perceptual loss.

Pieces: :mod:`.losses` (pure loss functions), :mod:`.memory_bank`, :mod:`.views` (pretext transformations by
name), :mod:`.methods` (the loss model of each variant), :mod:`.pretraining` (the registered pretraining
methods: LightningModules that own their training step). The command is ``sonokit pretrain``; the saved
encoder loads into a segmentation model with ``model.encoder_checkpoint``.
"""
from .memory_bank import MemoryBank
from .methods import VARIANTS, ContrastivePretrainer, contrastive_model
from .pretraining import SSL_METHODS, ContrastivePretraining, create_ssl_method, list_ssl_methods
from .views import PRETEXTS, PretextTransform, parse_pretext

__all__ = ["MemoryBank", "SSL_METHODS", "ContrastivePretrainer", "ContrastivePretraining", "contrastive_model",
           "VARIANTS", "create_ssl_method", "list_ssl_methods", "PRETEXTS", "PretextTransform", "parse_pretext"]
