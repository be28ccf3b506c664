"""Data sets: generated in code or read from a user's folder; nothing is downloaded at run time."""

from .peak import PEAK_STAMP, STROKE_KINDS, load_peak_folder, make_peak, peak_split

__all__ = ["PEAK_STAMP", "STROKE_KINDS", "load_peak_folder", "make_peak", "peak_split"]
