"""Training the same experiment for several variants (Std, Ort, RR, ...) and seeds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from ..chapters import ParameterError
from ..static import progress_bar
from ..training import Evaluate, LossFn, TrainConfig, TrainResult, seed_everything, train


@dataclass(frozen=True)
class Variant:
    """A training variant: the paper's names Std (plain), Ort (SRIP), RR (full reverse pass), RR1 (RR¹), lRR.

    What RR¹ (``rr_mode="first"``) and lRR (``"local"``) compute is our reading of the paper's names
    (book/method.md, "What we inferred")."""

    name: str
    lambda_rr: float = 0.0
    lambda_ort: float = 0.0
    rr_mode: str = "full"

    def config(self, base: TrainConfig, seed: int) -> TrainConfig:
        return dataclasses.replace(base, lambda_rr=self.lambda_rr, lambda_ort=self.lambda_ort,
                                   rr_mode=self.rr_mode, seed=seed)


def parse_lambdas(text: str, name: str = "lambda_grid") -> list[float]:
    """``"0.03, 0.3,1"`` -> ``[0.03, 0.3, 1.0]`` (order kept); :class:`ParameterError` naming the parameter
    ``name`` unless there is at least one value and every value is a finite number > 0."""
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ParameterError(f"parameter {name!r} must be comma-separated numbers, got {text!r}") from None
    if not values or not all(np.isfinite(v) and v > 0 for v in values):
        raise ParameterError(f"parameter {name!r} needs one or more finite values > 0, got {text!r}")
    return values


def grid_and_headline(text: str, headline: float, name: str = "lambda_grid") -> list[float]:
    """The λ of a verdict map, ascending and without repeats: the grid ``text`` (see :func:`parse_lambdas`) and the
    ``headline`` λ."""
    return sorted(set(parse_lambdas(text, name)) | {float(headline)})


def std_ort_rr(lambda_rr: float, lambda_ort: float) -> list[Variant]:
    """The three models of the authors' MNIST and peak tests."""
    return [Variant("Std"), Variant("Ort", lambda_ort=lambda_ort), Variant("RR", lambda_rr=lambda_rr)]


@dataclass
class Grid:
    """Results of :func:`train_grid`: one :class:`TrainResult` and one row of final measures per run."""

    runs: dict[tuple[str, int], TrainResult] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def frame(self) -> pd.DataFrame:
        """Final measures, one row per (variant, seed)."""
        return pd.DataFrame(self.rows)

    def model(self, variant: str, seed: int) -> nn.Module:
        return self.runs[(variant, seed)].model

    def histories(self) -> dict[str, pd.DataFrame]:
        """``{"variant/seed": history}`` for :func:`racecar_core.plotting.histories_figure`."""
        return {f"{v}/{s}": r.history for (v, s), r in self.runs.items()}


def train_grid(variants: Sequence[Variant], seeds: Sequence[int], *, make_model: Callable[[], nn.Module],
               data, base: TrainConfig, measure: Callable[[nn.Module], Mapping[str, Any]],
               loss_fn: LossFn | None = None, evaluate: Evaluate | None = None,
               run_dir: str | Path | None = None, identity: Mapping[str, Any] | None = None,
               tag: str = "", progress: bool = True) -> Grid:
    """Train every variant for every seed and measure the final models (in eval mode).

    ``data``: what :func:`racecar_core.train` takes, or a function ``seed -> data`` (e.g. batches whose
    shuffling and augmentation follow the seed). For each run the global RNGs are seeded with the seed
    before ``make_model()``, so the variants of one seed start from identical weights. With ``run_dir``
    each run keeps its files in ``run_dir/<tag><variant>-seed<seed>/`` and a repeated call resumes or
    reloads them; ``identity`` (model, loss, data, ...) is recorded there so a folder is never reused for
    a different experiment.
    """
    grid = Grid()
    jobs = [(v, s) for v in variants for s in seeds]
    outer = progress_bar(jobs, desc=tag.rstrip("-") or "runs", enabled=progress, leave=False)
    for variant, seed in outer:
        outer.set_postfix(run=f"{variant.name} seed {seed}")
        seed_everything(seed)
        model = make_model()
        subdir = Path(run_dir) / f"{tag}{variant.name}-seed{seed}" if run_dir else None
        kwargs = {"loss_fn": loss_fn} if loss_fn is not None else {}
        run_data = data(seed) if callable(data) else data
        result = train(model, run_data, variant.config(base, seed), evaluate=evaluate, run_dir=subdir,
                       identity={"variant": variant.name, **(identity or {})}, progress=False, **kwargs)
        grid.runs[(variant.name, seed)] = result
        result.model.eval()
        grid.rows.append({"variant": variant.name, "seed": seed, **measure(result.model)})
    outer.close()
    return grid
