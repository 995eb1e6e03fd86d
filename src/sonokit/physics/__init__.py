"""Ultrasound physics: the B-mode phantom simulator and physics-guided degradations."""
from .degrade import (
    AdditiveGaussianNoise,
    FourierPerturbation,
    GaussianPSFBlur,
    MultiplicativeSpeckle,
    PairSynthesizer,
    synthesize_pair,
)
from .phantom import Transducer, phantom_sample, simulate_bmode, simulate_phantom

__all__ = [
    "Transducer", "simulate_bmode", "phantom_sample", "simulate_phantom",
    "GaussianPSFBlur", "AdditiveGaussianNoise", "FourierPerturbation", "MultiplicativeSpeckle",
    "PairSynthesizer", "synthesize_pair",
]
