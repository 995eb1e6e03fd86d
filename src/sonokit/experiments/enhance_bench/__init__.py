"""The enhancement benchmark of Khan et al. 2026 (arXiv 2601.21856): ``sonokit experiment enhance-bench``.

Three studies, one results table each, one HTML report:

1. **Noise study.** Held-out frames (the test part of a fixed split, downscaled so the longer side is
   ``frames.max_side``) are the references; each gets additive Gaussian noise at several σ (8-bit units,
   σ/255) and multiplicative Nakagami-m speckle (on the envelope of the log-compressed frame, m = 1:
   Rayleigh) with a seeded generator, is clipped to [0, 1], and is restored BLINDLY (no method is told the
   noise level) by every trained network, classical filter and hybrid (``hybrids``: ``nllr_wiener`` guided
   by one of the networks, :mod:`sonokit.enhance.hybrid`). PSNR / SSIM against the reference and seconds
   per image, mean ± std over frames.
2. **PSF study** (controlled): a simulated B-mode phantom (:func:`sonokit.physics.simulate_ultrasound`) with
   bright point targets on weak speckle and a lateral step edge; extra Gaussian PSF blur of known σ (pixels,
   axial = lateral) plus weak Gaussian noise, then every method. Axial / lateral FWHM of the points (mm, on
   the linear envelope recovered from the log-compressed image: the classical -6 dB width) and the peak
   lateral gradient of the row-averaged edge profile (per mm), against the unblurred phantom.
3. **Plug-and-play.** A fixed segmentation model per dataset (trained once from its config, or given as a
   checkpoint) scores the test split on raw images and on images enhanced by each method. A network runs at
   the pixel scale it was trained at (the frame is downscaled to its ``max_side``, enhanced and resized back
   to the original size); classical filters and NLLR run at ``frames.max_side`` the same way. ``raw`` is
   untouched; ``raw_resampled`` goes through the same downscale / resize-back round trip without any
   filtering, to tell the effect of enhancement from that of resampling. Dice / IoU mean ± std over images.

Every result is cached in ``out_dir`` with the inputs that decide it (frame ids, seeds, settings, the
checkpoint and its modification time) and the commit, time and thread count it was computed with; a cached
result whose inputs differ is recomputed, a trained model whose config differs is refused. Rerunning resumes.
Timings are those of the run that computed each result. Output:
``results.json`` (one row per study, dataset, setting, method, metric), ``results.md`` and ``report.html``
(tables, before/after image pairs, the PSF profiles).

Modules: :mod:`.config` (the dataclasses), :mod:`.methods` (:class:`Method`, the noise), :mod:`.psf` (the
phantom and its measures), :mod:`.cache` (the result cache), :mod:`.studies` (the three studies),
:mod:`.figures` (the report's figures), :mod:`.bench` (:class:`EnhanceBench`: orchestration, tables, output).
"""

from .bench import EnhanceBench
from .config import BenchEnhancer, BenchFrames, BenchHybrid, EnhanceBenchConfig, NoiseSetting, PSFStudy, SegSet
from .methods import RESERVED, Method, apply_at_scale, degrade_frame, identity, setting_name
from .psf import psf_measures, psf_phantom

__all__ = ["RESERVED", "BenchEnhancer", "BenchFrames", "BenchHybrid", "EnhanceBench", "EnhanceBenchConfig", "Method",
           "NoiseSetting", "PSFStudy", "SegSet", "apply_at_scale", "degrade_frame", "identity", "psf_measures",
           "psf_phantom", "setting_name"]
