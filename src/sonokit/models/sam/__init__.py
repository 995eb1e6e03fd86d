"""Segment Anything (SAM) for ultrasound: SF-RecSAM (ECCV 2024) and its ablations, on ``segment_anything``.

One concept per module:

* :mod:`.encoder` — SAM's ViT image encoder with SAMUS's input adaptation (256 px, stride-8 patches, 32 x 32
  tokens) and the ``vit_b`` / ``vit_l`` / ``vit_h`` / ``vit_tiny`` variants;
* :mod:`.adapters` — zero-initialised bottleneck adapters, SAMUS's CNN branch and cross-attention adapters;
* :mod:`.fusion` — the paper's spatial-frequency fusion; the code's Haar high-frequency input;
* :mod:`.decoder` — SAM's prompt encoder and mask decoder, decoded image i with prompt i;
* :mod:`.prompts` — automatic box / point prompts from a coarse mask;
* :mod:`.corrector` — MC-dropout uncertainty, the dual false corrector, the training-free FNPC rules;
* :mod:`.checkpoint` — official SAM checkpoints and sonokit-pretrained ViTs as weights;
* :mod:`.sfrecsam` — the model and its registered factories ``sfrecsam`` and ``sam_adapter``.

Losses: :mod:`sonokit.tasks.losses_sam`. References: Kirillov et al., Segment Anything, ICCV 2023; Lin et al.,
SAMUS, 2023 (xianlin7/SAMUS); SF-RecSAM, ECCV 2024 (dodooo1/SFRecSAM). sonokit's code is its own, written
after reading those.
"""
from .encoder import SAM_VARIANTS, SamImageEncoder
from .sfrecsam import ADAPTER_UNFREEZE, SAM_FREEZE, SFRecSAM

__all__ = ["ADAPTER_UNFREEZE", "SAM_FREEZE", "SAM_VARIANTS", "SFRecSAM", "SamImageEncoder"]
