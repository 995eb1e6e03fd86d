"""Physics-guided image degradations for blind enhancement (Khan et al. 2026, arXiv 2601.21856).

Batched torch operators on B-mode images ``x`` of shape ``(B, 1, H, W)`` in [0, 1] (CPU or GPU); rows are
depth (axial), columns are lateral. Each operator follows the house style of replayable transforms
(:mod:`sonokit.transforms.frequency`): ``sample(batch, generator) -> params`` draws every random choice
from a ``torch.Generator``, ``apply(x, params)`` is deterministic, ``__call__(x, generator)`` does both.
Noise fields are drawn from a generator on ``x``'s device seeded by ``params["seed"]``, so a replay on the
same device is bit-identical (CPU and CUDA draw different fields from the same seed).

Operators (the math is in the pure functions; the dataclasses hold the option ranges), by module:

* ``psf``: :class:`GaussianPSFBlur` / :func:`psf_blur` — anisotropic Gaussian point-spread function
  ``h(z, x) = g_{σ_ax}(z) g_{σ_lat}(x)``, ``g_σ(t) ∝ exp(-t² / 2σ²)`` normalised to sum 1 (so the mean
  intensity is preserved), applied as two 1-D convolutions with per-sample kernels (one grouped conv per
  axis for the whole batch). Optional depth-varying lateral blur: ``σ_lat(t) = σ_lat · (1 + (f - 1) t)``
  with ``t = z / (H - 1)`` the normalised depth and ``f`` the far-field growth factor. It is implemented
  by PSF interpolation (Nagy & O'Leary 1998): the image is blurred laterally with ``depth_nodes`` sigmas
  taken at equally spaced depths ``t_k`` and the results are blended row by row with linear
  (hat-function) weights in ``t``; the blending weights sum to 1 on every row, so a constant image stays
  constant. This is the usual cheap stand-in for a true space-varying convolution.
* ``noise``: :class:`AdditiveGaussianNoise` / :func:`add_gaussian_noise` — ``y = x + σ ε``, ``ε ~ N(0, 1)``.
* ``noise``: :class:`FourierPerturbation` / :func:`fourier_perturb` — complex spectrum perturbation, see there.
* ``speckle``: :class:`MultiplicativeSpeckle` / :func:`apply_speckle` — ``y = x · n``, ``E[n] = 1``,
  Rayleigh or Nakagami-m, in the linear envelope domain.
* ``pairs``: :class:`PairSynthesizer` / :func:`synthesize_pair` — crop + rotate patches from frames, then blur
  and ONE noise model chosen at random: returns ``(degraded, target)`` training pairs.
* ``base``: what the operators share — the :class:`Degradation` protocol, input and option checks, and the
  replayable draws (:func:`uniform`, :func:`draw_seed`, :func:`device_generator`).

Why not DeepInverse: ``deepinv.physics.blur.gaussian_blur`` (0.5.x) builds ONE dense 2-D kernel from Python
float sigmas (size set by the largest sigma, rotated with torchvision), and ``deepinv.physics.Blur`` applies
a given kernel stack. Per-sample anisotropic sigmas would need a Python loop building ``B`` kernels, padding
them to a common size and a dense ``k × k`` convolution per sample, and it has no depth-varying PSF that
blends rows; the separable grouped convolution of ``psf`` does the batch in two small convolutions, with
sigmas as tensors sampled on any device, and adds no dependency.
"""
from __future__ import annotations

from .base import (
    Degradation,
    RandomDegradation,
    check_image,
    check_range,
    device_generator,
    draw_seed,
    uniform,
)
from .noise import AdditiveGaussianNoise, FourierPerturbation, add_gaussian_noise, fourier_perturb, hermitian_fields
from .pairs import ROTATIONS, PairSynthesizer, extract_patches, synthesize_pair
from .psf import PADDINGS, GaussianPSFBlur, conv1d_per_sample, gaussian_kernels1d, kernel_radius, psf_blur
from .speckle import SPECKLE_KINDS, MultiplicativeSpeckle, apply_speckle, speckle_field, standard_gamma

__all__ = [
    # psf.py
    "PADDINGS", "GaussianPSFBlur", "psf_blur", "gaussian_kernels1d", "kernel_radius", "conv1d_per_sample",
    # noise.py
    "AdditiveGaussianNoise", "add_gaussian_noise", "FourierPerturbation", "fourier_perturb", "hermitian_fields",
    # speckle.py
    "SPECKLE_KINDS", "MultiplicativeSpeckle", "apply_speckle", "speckle_field", "standard_gamma",
    # pairs.py
    "ROTATIONS", "PairSynthesizer", "synthesize_pair", "extract_patches",
    # base.py: the operator protocol, checks and replayable draws shared by the operators
    "Degradation", "RandomDegradation", "check_image", "check_range", "uniform", "draw_seed", "device_generator",
]
