"""Enhancement: networks (SCUNet, DnCNN, Restormer via DeepInverse) and the non-local low-rank (NLLR) denoiser
used to make clean-like targets."""
from .inference import enhance_image, load_enhancer
from .models import ENHANCERS, Enhancer, create_enhancer, list_enhancers
from .nllr import NLLRDenoiser, block_match, collaborative_wiener, estimate_noise_sigma, nllr_denoise, svd_threshold

__all__ = ["ENHANCERS", "Enhancer", "create_enhancer", "list_enhancers", "NLLRDenoiser", "nllr_denoise",
           "block_match", "collaborative_wiener", "svd_threshold", "estimate_noise_sigma", "load_enhancer", "enhance_image"]
