"""Tables for the chapters: mean ± sd summaries over seeds and the closing reproduction check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

VERDICTS = ("reproduced", "partly reproduced", "not reproduced", "not testable here")


def mean_sd(values: Sequence[float], digits: int = 3) -> str:
    """``"m ± s"`` of ``values`` (sample sd), both rounded to the sd's second significant digit (at most
    4 decimals); ``digits`` significant digits when the sd is 0 or there is a single value."""
    v = np.asarray(values, dtype=float)
    mean = v.mean()
    sd = v.std(ddof=1) if len(v) > 1 else 0.0
    if len(v) == 1 or not np.isfinite(sd):
        return f"{mean:.{digits}g}"
    if sd == 0:
        return f"{mean:.{digits}g} ± 0"
    decimals = int(np.clip(1 - np.floor(np.log10(sd)), 0, 4))
    spread = f"{sd:.{decimals}f}" if round(sd, decimals) > 0 else f"<{10.0**-decimals:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {spread}"


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


def claims_markdown(claims: Sequence[Claim]) -> str:
    """The reproduction check as a Markdown table, every text in full (for ``IPython.display.Markdown``)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    rows = ["| Paper's claim | Measured | Verdict | Note |", "| --- | --- | --- | --- |"]
    rows += [f"| {cell(c.claim)} | {cell(c.measured)} | **{c.verdict}** | {cell(c.note)} |" for c in claims]
    return "\n".join(rows)
