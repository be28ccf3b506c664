"""Batch execution: ``racecar run`` and ``racecar book`` execute the chapter notebooks with papermill, where no
front end shows widgets. They set ``RACECAR_STATIC=1``; then the chapters' controls draw their default view once
(:mod:`racecar_core.widgets`) and the training progress bars are left out: a bar saved into an executed notebook
is a frozen widget that the book could only show with scripts from a CDN.

Kept free of heavy imports: the command line reads it before any notebook runs.
"""

from __future__ import annotations

import os

from tqdm.auto import tqdm

STATIC_ENV = "RACECAR_STATIC"


def is_static() -> bool:
    """Whether notebooks run in batch (``RACECAR_STATIC`` set to a non-empty, non-0 value)."""
    return os.environ.get(STATIC_ENV, "") not in ("", "0")


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs) -> tqdm:
    """``tqdm(iterable, **kwargs)`` (a widget in Jupyter, text in a terminal), disabled when not ``enabled`` or
    under batch execution."""
    return tqdm(iterable, disable=not enabled or is_static(), **kwargs)
