"""Tables for the chapters: mean ± sd summaries over seeds and the closing reproduction check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

VERDICTS = ("reproduced", "partly reproduced", "not reproduced", "not testable here")


def mean_sd(values: Sequence[float], digits: int = 3) -> str:
    """``"m ± s"`` of ``values`` (sample sd; just ``m`` for a single value)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return f"{v[0]:.{digits}g}"
    return f"{v.mean():.{digits}g} ± {v.std(ddof=1):.{digits - 1 if digits > 1 else 1}g}"


def summarize(frame: pd.DataFrame, columns: Sequence[str], *, by: str | Sequence[str] = "variant",
              digits: int = 3) -> pd.DataFrame:
    """One row per group of ``by`` with ``"mean ± sd"`` of each column over the group's runs, plus ``n``."""
    keys = [by] if isinstance(by, str) else list(by)
    rows = []
    for key, group in frame.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key))
        row.update({c: mean_sd(group[c], digits) for c in columns})
        row["n"] = len(group)
        rows.append(row)
    return pd.DataFrame(rows).set_index(keys)


@dataclass(frozen=True)
class Claim:
    """One line of a chapter's reproduction check."""

    claim: str  # what the paper says
    measured: str  # what we measured (with the data set, preset and seeds)
    verdict: str  # one of VERDICTS
    note: str = ""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def verdict(holds: bool, partly: bool = False) -> str:
    """``"reproduced"`` if ``holds``, ``"partly reproduced"`` if ``partly``, else ``"not reproduced"``."""
    return "reproduced" if holds else ("partly reproduced" if partly else "not reproduced")


def claims_table(claims: Sequence[Claim]) -> pd.DataFrame:
    """The reproduction check as a table (one row per claim)."""
    return pd.DataFrame([asdict(c) for c in claims]).rename(columns=str.capitalize)
