"""Ultrasound physics: the B-mode simulator, the phantom dataset built on it, and physics-guided degradations."""
from .degrade import (
    AdditiveGaussianNoise,
    FourierPerturbation,
    GaussianPSFBlur,
    MultiplicativeSpeckle,
    PairSynthesizer,
    synthesize_pair,
)
from .phantom import Transducer, phantom_sample, simulate_bmode, simulate_phantom
from .simulator import (
    UltrasoundSimulation,
    log_compress,
    pulse_echo_fwhm_mm,
    random_scatterers,
    simulate_ultrasound,
)

__all__ = [
    "Transducer", "simulate_bmode", "phantom_sample", "simulate_phantom",
    "simulate_ultrasound", "UltrasoundSimulation", "random_scatterers", "pulse_echo_fwhm_mm", "log_compress",
    "GaussianPSFBlur", "AdditiveGaussianNoise", "FourierPerturbation", "MultiplicativeSpeckle",
    "PairSynthesizer", "synthesize_pair",
]
