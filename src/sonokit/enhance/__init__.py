"""Enhancement: classical baselines and the non-local low-rank (NLLR) denoiser used to make clean targets."""
from .nllr import NLLRDenoiser, block_match, estimate_noise_sigma, nllr_denoise, svd_threshold

__all__ = ["NLLRDenoiser", "nllr_denoise", "block_match", "svd_threshold", "estimate_noise_sigma"]
