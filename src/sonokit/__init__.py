"""sonokit: ultrasound-native deep learning."""
__version__ = "0.1.0"
