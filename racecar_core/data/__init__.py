"""Data sets: generated in code or read from a user's folder; nothing is downloaded at run time."""
from .ib12 import ib12, ib12_split  # noqa: F401
