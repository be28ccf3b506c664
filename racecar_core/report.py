"""Reproduction checks as data: claims with their source and verdict, verdict maps across λ, the scorecard.

A chapter module's ``claims(...)`` turns measured results into :class:`Claim` objects; the notebook only
shows them (:func:`claims_markdown`), :func:`save_claims` puts them into the run's ``metrics.json`` and
:func:`scorecard` gathers the claims of every run under a folder into one table.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

VERDICTS = ("reproduced", "partly reproduced", "not reproduced", "not testable here")
OUR_EXTRAPOLATION = "our extrapolation"  # the source of a claim the paper makes only for other settings


# --------------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------------


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


def headline(frame: pd.DataFrame, columns: Sequence[str], by: str = "variant") -> dict[str, float]:
    """``{"<column> <group>": mean}`` over the runs of each group: the numbers a sweep's summary plots."""
    return {f"{c} {key}": float(group[c].mean()) for key, group in frame.groupby(by, sort=False) for c in columns
            if c in group}


def per_variant(frame: pd.DataFrame, column: str, variants: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """``{variant: values of column}`` with each variant's rows sorted by seed (paired across variants)."""
    names = list(variants) if variants is not None else list(dict.fromkeys(frame["variant"]))
    out = {}
    for name in names:
        rows = frame[frame["variant"] == name].sort_values("seed")
        if rows.empty:
            raise KeyError(f"no runs of variant {name!r} (have {sorted(frame['variant'].unique())})")
        out[name] = rows[column].to_numpy(dtype=float)
    return out


# --------------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------------


def verdict(holds: bool, partly: bool = False) -> str:
    """``"reproduced"`` if ``holds``, ``"partly reproduced"`` if ``partly``, else ``"not reproduced"``."""
    return "reproduced" if holds else ("partly reproduced" if partly else "not reproduced")


def verdict_of(tests: Sequence[bool]) -> str:
    """``reproduced`` if every test holds, ``partly reproduced`` if some do, else ``not reproduced``."""
    held = [bool(t) for t in tests]
    if not held:
        raise ValueError("a verdict needs at least one test")
    return verdict(all(held), partly=any(held))


@dataclass(frozen=True)
class Comparison:
    """One paired test across seeds: does ``subject`` beat ``other`` on ``quantity``?

    It holds when the seed means are ordered the right way *and* ``subject`` wins in at least
    ``min_share`` of the seeds (1.0: every seed). Values are per seed, paired by seed (same data and
    initial weights).
    """

    quantity: str
    subject: str
    other: str
    subject_values: np.ndarray
    other_values: np.ndarray
    lower_is_better: bool = False
    min_share: float = 1.0

    def __post_init__(self):
        a, b = np.asarray(self.subject_values, float), np.asarray(self.other_values, float)
        if a.shape != b.shape or a.ndim != 1 or a.size == 0:
            raise ValueError(f"paired per-seed values needed, got shapes {a.shape} and {b.shape}")
        if not 0 < self.min_share <= 1:
            raise ValueError(f"min_share must be in (0, 1], got {self.min_share}")
        object.__setattr__(self, "subject_values", a)
        object.__setattr__(self, "other_values", b)

    @property
    def wins(self) -> np.ndarray:
        a, b = self.subject_values, self.other_values
        return a < b if self.lower_is_better else a > b

    @property
    def holds(self) -> bool:
        a, b = self.subject_values.mean(), self.other_values.mean()
        better = a < b if self.lower_is_better else a > b
        return bool(better and self.wins.mean() >= self.min_share - 1e-12)

    def text(self) -> str:
        return (f"{self.subject} {mean_sd(self.subject_values)} vs {self.other} {mean_sd(self.other_values)} "
                f"({int(self.wins.sum())}/{self.wins.size} seeds {'lower' if self.lower_is_better else 'higher'})")

    def record(self) -> dict[str, Any]:
        return {"quantity": self.quantity, "subject": self.subject, "other": self.other,
                "subject_values": self.subject_values.tolist(), "other_values": self.other_values.tolist(),
                "lower_is_better": self.lower_is_better, "min_share": self.min_share, "holds": self.holds}


def compare_all(quantity: str, values: Mapping[str, np.ndarray], subject: str, others: Sequence[str], *,
                lower_is_better: bool = False, min_share: float = 1.0) -> list[Comparison]:
    """``subject`` against each of ``others`` on per-seed ``values`` ({variant: [seeds]})."""
    return [Comparison(quantity, subject, other, values[subject], values[other], lower_is_better, min_share)
            for other in others]


def measured_text(comparisons: Sequence[Comparison]) -> str:
    """``"quantity: A m ± s vs B m ± s (k/n seeds higher); ..."``."""
    return "; ".join(f"{c.quantity}: {c.text()}" for c in comparisons)


# --------------------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One line of a chapter's reproduction check and of the scorecard.

    ``source`` says where the paper makes the claim (a figure, a table, the abstract) or
    ``"our extrapolation"`` where the book tests it in a setting the paper does not report; ``paper`` is
    the paper's own value where it states one. ``test`` is the threshold, fixed before the results.
    ``across_lambda`` holds ``(λ, verdict)`` for every λ of a verdict map, where the verdict depends on λ;
    ``lambda_rr`` is the λ the headline ``verdict`` belongs to.
    """

    chapter: str
    key: str
    claim: str
    source: str
    measured: str
    verdict: str
    test: str
    paper: str = ""
    seeds: tuple[int, ...] = ()
    preset: str = ""
    data: str = ""
    lambda_rr: str = ""
    across_lambda: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        for name in ("chapter", "key", "claim", "source", "measured", "test"):
            if not str(getattr(self, name)).strip():
                raise ValueError(f"a claim needs a non-empty {name}")
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "across_lambda", tuple((str(a), str(v)) for a, v in self.across_lambda))
        if any(v not in VERDICTS for _, v in self.across_lambda):
            raise ValueError(f"verdicts across λ must be in {VERDICTS}, got {self.across_lambda}")

    @property
    def seeds_text(self) -> str:
        """``"0–4 (5)"`` for consecutive seeds, else the list."""
        s = list(self.seeds)
        if not s:
            return ""
        if s == list(range(s[0], s[0] + len(s))) and len(s) > 2:
            return f"{s[0]}–{s[-1]} ({len(s)})"
        return ", ".join(map(str, s))

    @property
    def lambda_text(self) -> str:
        """The verdict at each λ of the map, e.g. ``"0.03: not; 0.3: partly; 1: reproduced"``."""
        short = {"reproduced": "reproduced", "partly reproduced": "partly", "not reproduced": "not",
                 "not testable here": "not testable"}
        return "; ".join(f"{lam}: {short[v]}" for lam, v in self.across_lambda)

    def record(self) -> dict[str, Any]:
        """A JSON-able dict (``metrics.json``)."""
        out = dataclasses.asdict(self)
        out["seeds"] = list(self.seeds)
        out["across_lambda"] = [list(p) for p in self.across_lambda]
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Claim:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in record.items() if k in known}
        values["seeds"] = tuple(values.get("seeds", ()))
        values["across_lambda"] = tuple(tuple(p) for p in values.get("across_lambda", ()))
        return cls(**values)


@dataclass(frozen=True)
class Setting:
    """What every claim of one chapter run shares: chapter, preset, seeds, data set and λ."""

    chapter: str
    preset: str
    seeds: tuple[int, ...]
    data: str
    lambda_rr: str = ""

    def claim(self, key: str, claim: str, *, source: str, measured: str, verdict: str, test: str,
              paper: str = "", across_lambda: Sequence[tuple[Any, str]] = (), lambda_rr: str | None = None) -> Claim:
        return Claim(self.chapter, key, claim, source, measured, verdict, test, paper, tuple(self.seeds),
                     self.preset, self.data, self.lambda_rr if lambda_rr is None else lambda_rr,
                     tuple((format_lambda(a), v) for a, v in across_lambda))


def format_lambda(value: Any) -> str:
    """λ as a short string: ``0.03``, ``1e-05``, ``1``."""
    return f"{value:g}" if isinstance(value, (int, float, np.floating)) else str(value)


def verdict_map(claims_by_lambda: Mapping[Any, Sequence[Claim]]) -> pd.DataFrame:
    """Claims (rows, by ``key``) × λ (columns): the verdict of each claim at each λ of a grid (same seeds)."""
    columns = {format_lambda(lam): {c.key: c.verdict for c in claims} for lam, claims in claims_by_lambda.items()}
    frame = pd.DataFrame(columns)
    frame.index.name = "claim"
    frame.columns.name = "λ_RR"
    return frame


def with_lambda_map(claims: Sequence[Claim], claims_by_lambda: Mapping[Any, Sequence[Claim]]) -> list[Claim]:
    """``claims`` (at the chosen λ) with each one's verdicts across the grid filled in from the map."""
    table = verdict_map(claims_by_lambda)
    out = []
    for c in claims:
        if c.key in table.index:
            row = table.loc[c.key]
            c = dataclasses.replace(c, across_lambda=tuple((lam, row[lam]) for lam in table.columns))
        out.append(c)
    return out


def lambda_summary(claim: Claim) -> str:
    """Where a claim holds across its verdict map, in words: ``"reproduced at λ 1; partly at λ 0.03, 0.3"``."""
    if not claim.across_lambda:
        return f"{claim.verdict} (a single λ, {claim.lambda_rr})"
    groups: dict[str, list[str]] = {}
    for lam, v in claim.across_lambda:
        groups.setdefault(v, []).append(lam)
    words = {"reproduced": "reproduced", "partly reproduced": "partly", "not reproduced": "not",
             "not testable here": "not testable"}
    return "; ".join(f"{words[v]} at λ {', '.join(groups[v])}" for v in VERDICTS if v in groups)


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown pipe table, every text in full."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def claims_markdown(claims: Sequence[Claim]) -> str:
    """A chapter's reproduction check as a Markdown table (for ``IPython.display.Markdown``)."""
    show_lambda = any(c.across_lambda for c in claims)
    header = ["Claim", "Source", "Paper", "Measured", "Verdict", "Test"] + (["Across λ"] if show_lambda else [])
    rows = [[c.claim, c.source, c.paper or "–", f"{c.measured} [{c.data}; preset {c.preset}; seeds {c.seeds_text}"
             + (f"; λ {c.lambda_rr}" if c.lambda_rr else "") + "]", f"**{c.verdict}**", c.test]
            + ([c.lambda_text or "–"] if show_lambda else []) for c in claims]
    return markdown_table(header, rows)


def claims_frame(claims: Sequence[Claim]) -> pd.DataFrame:
    """One row per claim, every field a column."""
    return pd.DataFrame([c.record() for c in claims])


# --------------------------------------------------------------------------------------------------
# The scorecard: every claim of every run under a folder
# --------------------------------------------------------------------------------------------------

SCORECARD_COLUMNS = ("chapter", "claim", "source", "paper", "measured", "seeds", "verdict", "across λ", "preset", "run")


@dataclass
class Scorecard:
    """The claims of every run found under a folder (:func:`scorecard`)."""

    rows: list[tuple[Path, Claim]] = field(default_factory=list)

    @property
    def claims(self) -> list[Claim]:
        return [c for _, c in self.rows]

    def counts(self) -> dict[str, int]:
        """Number of claims per verdict (every verdict listed, zeros included)."""
        return {v: sum(c.verdict == v for c in self.claims) for v in VERDICTS}

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"chapter": c.chapter, "claim": c.claim, "source": c.source, "paper": c.paper,
                              "measured": c.measured, "seeds": c.seeds_text, "verdict": c.verdict,
                              "across λ": c.lambda_text, "preset": c.preset, "run": str(run)}
                             for run, c in self.rows], columns=list(SCORECARD_COLUMNS))

    def markdown(self, link: Callable[[str], str] | None = None) -> str:
        """The table and the counts by verdict. ``link(chapter)`` gives the Markdown shown for a chapter's name
        (e.g. a MyST reference to its reproduction check); by default the plain name."""
        table = markdown_table(
            ["Chapter", "Claim", "Source", "Paper", "Measured", "Seeds", "Verdict", "Across λ"],
            [[link(c.chapter) if link else c.chapter, c.claim, c.source, c.paper or "–", c.measured, c.seeds_text,
              f"**{c.verdict}**", c.lambda_text or "–"] for c in self.claims])
        counts = ", ".join(f"{v}: {n}" for v, n in self.counts().items())
        return f"{table}\n\n{len(self.claims)} claims. {counts}."


def scorecard(runs_dir: str | Path, chapters: Sequence[str] | None = None) -> Scorecard:
    """Read every ``metrics.json`` under ``runs_dir`` (recursively) and collect its claims, in the order of
    ``chapters`` (book order) and then of the run folders. A file without claims is skipped."""
    from .runs import load_metrics

    root = Path(runs_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of runs; run a chapter first (racecar run CHAPTER)")
    found = []
    for path in sorted(root.rglob("metrics.json")):
        record = load_metrics(path)
        claims = [Claim.from_record(r) for r in record.get("results", {}).get("claims", [])]
        found += [(path.parent, c) for c in claims]
    order = {name: i for i, name in enumerate(chapters or [])}
    found.sort(key=lambda rc: order.get(rc[1].chapter, len(order)))  # stable: folders keep their order
    return Scorecard(found)


def claims_records(claims: Sequence[Claim]) -> list[dict[str, Any]]:
    """The claims as JSON-able records for ``metrics.json``."""
    return json.loads(json.dumps([c.record() for c in claims]))


def save_run(run_dir: str, chapter: str, cfg: Mapping[str, Any], claims: Sequence[Claim], **results: Any) -> Path | None:
    """Write the run's ``metrics.json`` (parameters, code version, machine, ``results`` and the claims) into
    ``run_dir``; nothing when ``run_dir`` is empty. Returns the file's path."""
    from .runs import save_metrics

    return save_metrics(run_dir, chapter, dict(cfg), {**results, "claims": claims_records(claims)})
