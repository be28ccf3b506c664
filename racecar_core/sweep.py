"""Parameter sweeps of a chapter on Dask: each grid point is one chapter run, executed as ``racecar run`` does.

    racecar sweep peak -p lambda_rr 1e-7,1e-6,1e-5 --preset cpu --workers 2
    racecar sweep peak -p lambda_rr 1e-7,1e-6 --scheduler tcp://HOST:8786     # an existing Dask cluster

The sweep's folder ``runs/sweeps/<chapter>-<name>/`` holds one run folder per grid point (``points/<values>/``
with its notebook, ``metrics.json`` and trainings), ``summary.csv`` (one row per point: its parameters, its
status, the chapter's headline numbers and each claim's verdict) and ``summary.png`` (the headline numbers
against the swept parameter). Running the same sweep again skips the finished points and resumes the others
from their checkpoints; a failing point is reported, with its log, and the others finish.

Each point runs ``python -m racecar_core.cli run`` in a subprocess on a Dask worker, so a worker of a remote
cluster needs this project installed at the same path (or the same package version) and the data it reads.
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .chapters import Chapter, ParameterError
from .files import write_json, write_text
from .runs import REPO_ROOT, code_version, load_metrics

SWEEPS = REPO_ROOT / "runs" / "sweeps"
LOG_NAME = "sweep.log"


@dataclass(frozen=True)
class Point:
    """One grid point: its parameter values as typed (``values``) and as given (``texts``), and its folder name."""

    values: dict[str, Any]
    texts: dict[str, str]

    @property
    def name(self) -> str:
        return "-".join(f"{k}={v}" for k, v in self.values.items()).replace("/", "_") or "default"


def parse_grid(chapter: Chapter, pairs: Sequence[str]) -> dict[str, list[str]]:
    """``["lambda_rr=1e-6,1e-5", ...]`` (from ``-p NAME v1,v2``) → ``{name: [text, ...]}``; names are checked."""
    grid: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, values = pair.partition("=")
        if not sep or not values.strip():
            raise ParameterError(f"-p needs a name and comma-separated values (-p NAME v1,v2), got {pair!r}")
        chapter.param(name)
        if name in grid:
            raise ParameterError(f"parameter {name!r} is given twice; list all its values once: -p {name} v1,v2")
        texts = [v.strip() for v in values.split(",")]
        if any(not t for t in texts) or len(set(texts)) != len(texts):
            raise ParameterError(f"parameter {name!r}: empty or repeated values in {values!r}")
        grid[name] = texts
    return grid


def expand(chapter: Chapter, preset: str, grid: Mapping[str, Sequence[str]]) -> list[Point]:
    """Every combination of the grid's values, each parsed and validated with the chapter's spec before any
    work starts (a bad value anywhere refuses the whole sweep)."""
    names = list(grid)
    points = []
    for combo in itertools.product(*(grid[n] for n in names)):
        texts = dict(zip(names, combo))
        values = {n: chapter.param(n).parse(t) for n, t in texts.items()}
        chapter.configure(preset, **values)
        points.append(Point(values, texts))
    if not points:
        raise ParameterError("the sweep has no grid points")
    return points


def sweep_folder(chapter: Chapter, preset: str, grid: Mapping[str, Sequence[str]], name: str | None = None) -> Path:
    """``runs/sweeps/<chapter>-<name>``; the default name is the preset and the swept parameters."""
    name = name or "-".join([preset, *sorted(grid)])
    if not name or "/" in name or name.startswith("."):
        raise ParameterError(f"sweep name {name!r} must be a plain folder name")
    return SWEEPS / f"{chapter.name}-{name}"


def run_point(chapter: str, preset: str, texts: Mapping[str, str], out: str, threads: int) -> dict[str, Any]:
    """Run one grid point as ``racecar run`` in a subprocess (on a Dask worker); its output goes to
    ``out/sweep.log``. Returns its status, exit code and the log's last lines."""
    command = [sys.executable, "-m", "racecar_core.cli", "run", chapter, "--preset", preset, "--out", out, "--no-progress"]
    for name, text in texts.items():
        command += [f"--param={name}={text}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    Path(out).mkdir(parents=True, exist_ok=True)
    with open(Path(out) / LOG_NAME, "w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO_ROOT))
    tail = (Path(out) / LOG_NAME).read_text(errors="replace").splitlines()[-15:]
    return {"status": "finished" if code == 0 else "failed", "returncode": code, "log_tail": "\n".join(tail)}


def headline_columns(record: Mapping[str, Any]) -> dict[str, Any]:
    """A run's headline numbers (``results.headline``) and each claim's verdict (``verdict:<key>``)."""
    results = record.get("results", {})
    out = {str(k): v for k, v in results.get("headline", {}).items()}
    out.update({f"verdict:{c['key']}": c["verdict"] for c in results.get("claims", [])})
    return out


def summary(points: Sequence[Point], folder: Path, status: Mapping[str, str]) -> pd.DataFrame:
    """One row per grid point: its parameters, status, headline numbers and claim verdicts."""
    rows = []
    for point in points:
        metrics = folder / "points" / point.name / "metrics.json"
        row = {**point.values, "point": point.name, "status": status.get(point.name, "finished")}
        if row["status"] == "finished" and metrics.is_file():
            row.update(headline_columns(load_metrics(metrics)))
        rows.append(row)
    return pd.DataFrame(rows)


def summary_figure(frame: pd.DataFrame, swept: Sequence[str], title: str):
    """The headline numbers (one panel each) against the first swept parameter, one line per combination of
    the others; ``None`` when no finished point has headline numbers."""
    import matplotlib.pyplot as plt

    reserved = {"point", "status", *swept}
    numbers = [c for c in frame.columns if c not in reserved and not c.startswith("verdict:")
               and pd.api.types.is_numeric_dtype(frame[c])]
    done = frame[frame.status == "finished"]
    if not numbers or done.empty:
        return None
    x, others = swept[0], list(swept[1:])
    fig, axes = plt.subplots(1, len(numbers), figsize=(3.6 * len(numbers), 3.0), squeeze=False)
    groups = done.groupby(others) if others else [((), done)]
    for ax, column in zip(axes[0], numbers):
        for key, group in groups:
            label = ", ".join(f"{o}={v}" for o, v in zip(others, key if isinstance(key, tuple) else (key,)))
            group = group.sort_values(x)
            ax.plot(group[x], group[column], "-o", ms=4, label=label or None)
        ax.set_xlabel(x)
        ax.set_title(column, fontsize=9)
        numeric_x = pd.api.types.is_numeric_dtype(done[x])
        if numeric_x and (done[x] > 0).all() and done[x].max() / done[x].min() >= 100:
            ax.set_xscale("log")
        if others:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _client(workers: int, scheduler: str | None):
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                           silence_logs=logging.ERROR)
    return Client(cluster)


def run_sweep(chapter: Chapter, preset: str, grid: Mapping[str, Sequence[str]], *, workers: int = 2,
              scheduler: str | None = None, name: str | None = None, progress: bool = True) -> tuple[pd.DataFrame, Path]:
    """Run every point of ``grid`` that has not finished yet as a Dask task, then write the summary and its
    figure. Returns the summary and the sweep's folder. ``workers``: processes of the local cluster (each
    point's PyTorch gets ``cores // workers`` threads); ignored with ``scheduler`` (an existing cluster)."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    points = expand(chapter, preset, grid)
    folder = sweep_folder(chapter, preset, grid, name)
    write_json(folder / "sweep.json", {"chapter": chapter.name, "preset": preset, "grid": {k: list(v) for k, v in grid.items()},
                                       "code": code_version()})
    todo = [p for p in points if not (folder / "points" / p.name / "metrics.json").is_file()]
    print(f"racecar sweep: {len(points)} points, {len(points) - len(todo)} already finished; folder {folder}", flush=True)
    status: dict[str, str] = {}
    if todo:
        threads = max(1, (os.cpu_count() or 1) // max(1, workers))
        with _client(workers, scheduler) as client:
            print(f"racecar sweep: Dask dashboard {client.dashboard_link}", flush=True)
            futures = {client.submit(run_point, chapter.name, preset, p.texts, str(folder / "points" / p.name), threads,
                                     key=f"{chapter.name}-{p.name}", pure=False): p for p in todo}
            bar = tqdm(total=len(futures), desc=f"sweep {chapter.name}", disable=not progress)
            for future in as_completed(futures):
                point, result = futures[future], future.result()
                status[point.name] = result["status"]
                if result["status"] == "failed":
                    tqdm.write(f"racecar sweep: point {point.name} failed (exit {result['returncode']}); log: "
                               f"{folder / 'points' / point.name / LOG_NAME}\n{result['log_tail']}")
                bar.update(1)
            bar.close()
    frame = summary(points, folder, status)
    write_text(folder / "summary.csv", frame.to_csv(index=False))
    fig = summary_figure(frame, list(grid), f"{chapter.name}, preset {preset}")
    if fig is not None:
        fig.savefig(folder / "summary.png", dpi=120)
    return frame, folder


def failed_points(frame: pd.DataFrame) -> list[str]:
    """Names of the points that failed in this invocation."""
    return frame.loc[frame.status == "failed", "point"].tolist()

