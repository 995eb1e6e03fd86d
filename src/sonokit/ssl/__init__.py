"""Self-supervised pretraining of encoders (Ellis et al. 2025): PIRL, Relation Contrastive Loss, perceptual loss.

Pieces: :mod:`.losses` (pure loss functions), :mod:`.memory_bank`, :mod:`.views` (pretext transformations by
name), :mod:`.methods` (the registered methods). The Lightning task is :class:`sonokit.tasks.PretrainTask`
and the command ``sonokit pretrain``; the saved encoder loads into a Res-UNet with
``model.encoder_checkpoint``.
"""
from .memory_bank import MemoryBank
from .methods import SSL_METHODS, ContrastivePretrainer, create_ssl_method, list_ssl_methods
from .views import PRETEXTS, PretextTransform, parse_pretext

__all__ = ["MemoryBank", "SSL_METHODS", "ContrastivePretrainer", "create_ssl_method", "list_ssl_methods",
           "PRETEXTS", "PretextTransform", "parse_pretext"]
