"""racecar_core: reverse-pass ("racecar") training for PyTorch models."""

__version__ = "0.1.0"
