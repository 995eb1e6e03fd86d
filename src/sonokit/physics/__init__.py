"""Ultrasound physics: the B-mode phantom simulator."""
from .phantom import Transducer, phantom_sample, simulate_bmode, simulate_phantom

__all__ = ["Transducer", "simulate_bmode", "phantom_sample", "simulate_phantom"]
