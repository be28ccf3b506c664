"""Data sets: generated in code or read from a user's folder; nothing is downloaded at run time."""
