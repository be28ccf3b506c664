"""Run every benchmark with ``--json`` (short settings, one thread) and write a markdown table of the results.

    python benchmarks/run_all.py [--out benchmarks/results.md] [--only reverse_pass mi_kde ...]

``make bench`` runs this. Every benchmark prints one JSON line last; those lines are kept verbatim in the
output file (below the table) so that two commits can be compared. One torch/BLAS thread
(``OMP_NUM_THREADS=1``, ``--threads 1``): on a shared machine the ratios are steadier than with all cores, but
the absolute times still depend on the load, which is recorded with every result.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name -> arguments (short runs: two to three minutes in all on one loaded core)
BENCHMARKS: dict[str, list[str]] = {
    "reverse_pass": ["--threads", "1", "--clock", "cpu", "--min-run-time", "3", "--rounds", "5"],
    "gan_step": ["--threads", "1", "--rounds", "5", "--steps", "10"],
    "weather_forecast": ["--speed-only", "--threads", "1", "--rounds", "5", "--speed-steps", "10"],
    "mi_binning": ["--threads", "1", "--models", "1", "--snapshots", "20"],
    "mi_kde": ["--snapshots", "2", "--rounds", "3"],
}


def run(name: str, args: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *args, "--json"],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"benchmarks/{name}.py failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(f"{name}: {result['seconds']} s", file=sys.stderr)
    return result


def rows(result: dict) -> list[tuple[str, str, str]]:
    """(case, ms per step, ratio) rows of one benchmark's JSON."""
    out = []
    name = result["benchmark"]
    for case, r in result.items():
        if not isinstance(r, dict) or case == "machine":
            continue
        if "rr_over_std" in r:  # reverse_pass, resnet_throughput
            out.append((f"{case}: RR / Std step", f"{r['rr_ms']:.2f} / {r['std_ms']:.2f}", f"{r['rr_over_std']:.2f}"))
            if "rr_handwritten_over_std" in r:
                out.append((f"{case}: RR (hand-written reverse) / Std step", f"{r['rr_handwritten_ms']:.2f} / {r['std_ms']:.2f}",
                            f"{r['rr_handwritten_over_std']:.2f}"))
            if "generic_over_handwritten" in r:
                out.append((f"{case}: generic / hand-written reverse", f"{r['generic_ms']:.2f} / {r['handwritten_ms']:.2f}",
                            f"{r['generic_over_handwritten']:.3f}"))
        elif name == "gan_step":
            for arm, a in r.items():
                if arm != "Std":
                    out.append((f"GAN {arm} / Std step (CPU clock)", f"{a['cpu_ms']:.1f} / {r['Std']['cpu_ms']:.1f}",
                                f"{a['over_std_cpu']:.2f}"))
        elif name == "weather_forecast":
            out.append(("weather ResNet RR / Std step (CPU clock)", f"{r['RR']['cpu_ms']:.1f} / {r['Std']['cpu_ms']:.1f}",
                        f"{r['rr_over_std_cpu']:.2f}"))
        elif name == "mi_binning":
            out.append(("binning planes, per snapshot (7 layers)", f"{r['ms_per_snapshot']:.1f}", ""))
        elif name == "mi_kde":
            out.append(("KDE upper bound, per snapshot (7 layers): old / new", f"{r['old_ms']:.0f} / {r['new_ms']:.0f}",
                        f"{r['speedup']:.1f}× faster"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.md"), help="markdown file to write")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these benchmarks")
    args = parser.parse_args()
    results = [run(name, BENCHMARKS[name]) for name in (args.only or BENCHMARKS)]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT).stdout.strip())
    except OSError:
        commit, dirty = "unknown", False
    loads = [r["machine"]["load_average"][0] for r in results]
    lines = [
        "# Benchmark results",
        "",
        f"Commit {commit}{' (with uncommitted changes)' if dirty else ''}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"torch {results[0]['machine']['torch']}, one thread, {results[0]['machine']['cpus']} CPUs; "
        f"1-minute load average {min(loads):.2f} to {max(loads):.2f} during the runs (a shared machine: absolute times "
        "depend on the load; ratios measured in alternating rounds are steadier). Written by `make bench`.",
        "",
        "| benchmark | measurement | ms per step (or per snapshot) | ratio |",
        "|---|---|---|---|",
    ]
    for r in results:
        for case, ms, ratio in rows(r):
            lines.append(f"| {r['benchmark']} | {case} | {ms} | {ratio} |")
    lines += ["", "The JSON line each benchmark printed last:", "", "```"]
    lines += [json.dumps(r) for r in results]
    lines += ["```", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
