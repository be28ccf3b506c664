"""Shared helpers of the benchmark scripts: medians of alternating rounds, the machine's load, one JSON line."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import torch


def median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])


def alternating_ms(functions: dict[str, Callable[[], None]], rounds: int, calls: int | None = None, warmup: int = 2,
                   clock: Callable[[], float] = time.perf_counter, seconds_per_round: float = 0.2) -> dict[str, float]:
    """Median milliseconds per call of each function over ``rounds`` rounds of ``calls`` calls, the functions
    alternating within every round (in forward order in even rounds, in reverse order in odd ones, so that no
    function always follows the same one) so that drifts in machine load affect them alike. ``calls=None``:
    per function, as many calls as take about ``seconds_per_round`` (from the warm-up's timing)."""
    per_call = {}
    for name, fn in functions.items():
        start = clock()
        for _ in range(warmup):
            fn()
        per_call[name] = max((clock() - start) / max(warmup, 1), 1e-6)
    counts = {name: calls or max(1, round(seconds_per_round / per_call[name])) for name in functions}
    times: dict[str, list[float]] = {name: [] for name in functions}
    items = list(functions.items())
    for r in range(rounds):
        for name, fn in (items if r % 2 == 0 else items[::-1]):
            n = counts[name]
            start = clock()
            for _ in range(n):
                fn()
            times[name].append((clock() - start) / n * 1e3)
    return {name: median(t) for name, t in times.items()}


def machine() -> dict:
    """What the numbers were measured on: torch, threads, CPUs and the load average (the machine may be shared)."""
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def print_json(name: str, results: dict) -> None:
    """The last line of a benchmark's output: one compact JSON object (compare it between commits)."""
    print(json.dumps({"benchmark": name, **results, "machine": machine()}, default=float))
