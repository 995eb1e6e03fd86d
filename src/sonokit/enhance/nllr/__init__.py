"""Non-local low-rank (NLLR) patch-group denoising: the clean targets of Khan et al. 2026 (arXiv 2601.21856).

For a noisy image ``y = x + n``, ``n ~ N(0, σ²)`` (for log-compressed B-mode, speckle is roughly additive):

1. **Block matching** (:func:`block_match`). Reference patches of ``p × p`` pixels on a grid of stride ``s``
   (the last row/column of positions is always included, so every pixel is covered). For each reference,
   all patches whose top-left corner lies within ``±search`` pixels (and inside the image) are candidates;
   the ``k`` with the smallest squared L2 distance (the reference itself, at distance 0, included) form its
   group. Distances for one displacement ``d`` are p × p box sums of ``(y - shift_d(y))²`` at the
   reference corners, read off running sums (cumulative sums along x, then along y at the reference
   columns), so the search costs ``O((2·search + 1)² · H · W)`` whatever the patch size.
2. **Low-rank approximation** (:func:`svd_threshold`). Each group is a ``(p², k)`` matrix ``Y_g`` (one patch
   per column). Its row mean ``μ_g`` (the average patch) is kept, and the centred matrix is replaced by
   ``U T_τ(Σ) Vᵀ``, with hard (``σ_i · 1[σ_i > τ]``) or soft (``max(σ_i - τ, 0)``) thresholding of its
   singular values at

       τ = c · σ · (sqrt(p²) + sqrt(k)).

   ``σ (sqrt(m) + sqrt(n))`` is the largest singular value of an ``m × n`` matrix of i.i.d. ``N(0, σ²)``
   entries for large ``m, n`` (the Bai-Yin / Marchenko-Pastur bulk edge), so with ``c = 1`` every
   component that noise alone could produce is discarded. Thresholding the singular values of
   block-matched groups at a noise-tied level is the scheme of the SVD-based group denoisers, e.g. Guo,
   Zhang, Zeng & Liu, "An efficient SVD-based method for image denoising", IEEE TCSVT 26(5), 2016; WNNM
   (Gu et al., CVPR 2014) replaces the single ``τ`` by weights ``w_i = c sqrt(k) σ² / (σ_i(X) + ε)``.
   All groups are decomposed in one batched call (``torch.linalg.svd``, or the equivalent and faster
   eigendecomposition of the k × k Gram matrices, see :func:`svd_threshold`).
3. **Aggregation** (:func:`aggregate_groups`). Every denoised patch is added back at its position with a
   group weight, ``w_g = 1`` (``uniform``) or ``w_g = 1 / (1 + r_g)`` with ``r_g`` the kept rank (``rank``;
   groups explained by fewer components are more reliable, as BM3D weights by sparsity), and each pixel is
   the weighted mean of its estimates.
4. Optional extra passes (``iterations > 1``) use the iterative regularisation of WNNM:
   ``y_t = x̂_{t-1} + δ (y - x̂_{t-1})`` and ``σ_t = γ sqrt(max(σ² - mean((y - x̂_{t-1})²), 0))``.

5. Optional collaborative Wiener refinement (``wiener > 0``, :func:`collaborative_wiener`): BM3D's second
   step, with the NLLR estimate as its pilot: block matching on the pilot, empirical Wiener shrinkage of
   each noisy group's 3-D DCT spectrum by the pilot's, Kaiser-windowed aggregation. With one low-rank
   pass (``search=7, c=1.15``) and one Wiener pass this is the ``nllr_wiener`` classical method; on BUSI
   frames at σ = 25/255 it comes within ~0.2 dB of the ``bm3d`` package at several times its speed
   (``benchmarks/results/nllr_vs_bm3d.md``).

When ``sigma`` is not given it is estimated by :func:`estimate_noise_sigma` (Donoho's MAD rule on the
finest diagonal Haar wavelet band; ``skimage.restoration.estimate_sigma`` does the same with a Daubechies
wavelet but needs PyWavelets, which sonokit does not depend on).

One module per step: ``matching`` (block matching), ``lowrank`` (singular-value thresholding), ``groups``
(gathering and aggregating patch groups), ``wiener`` (collaborative Wiener), ``sigma`` (noise estimate) and
``denoise`` (:func:`nllr_denoise`, :class:`NLLRDenoiser`: the whole pipeline).

Everything is vectorised torch (float32) on the input's device; there are no Python loops over pixels or
groups (only over chunks of search displacements). On CPU the result is bit-for-bit reproducible; on CUDA,
``index_add_`` accumulates with atomics unless ``torch.use_deterministic_algorithms(True)``.
"""
from __future__ import annotations

from .denoise import GUIDE_WEIGHT, WEIGHTINGS, NLLRDenoiser, nllr_denoise
from .groups import aggregate_groups, gather_groups, patch_index
from .lowrank import THRESHOLDS, noise_threshold, svd_threshold
from .matching import block_match
from .sigma import estimate_noise_sigma
from .wiener import collaborative_wiener, dct_matrix

__all__ = [
    "nllr_denoise", "NLLRDenoiser", "GUIDE_WEIGHT", "WEIGHTINGS",  # denoise.py
    "block_match",  # matching.py
    "gather_groups", "aggregate_groups", "patch_index",  # groups.py
    "svd_threshold", "noise_threshold", "THRESHOLDS",  # lowrank.py
    "collaborative_wiener", "dct_matrix",  # wiener.py
    "estimate_noise_sigma",  # sigma.py
]
