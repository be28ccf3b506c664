"""Forecast ResNet on the simulated atmosphere: training speed of Std and RR, and a first rough comparison.

Data: the default simulation (``load_shallow_water``: read from the cache, generated first if absent),
members 0-5 for training (normalisation statistics from them only), member 7 for testing; inputs z and t
at time t, targets at t + 72 h. Model: ``forecast_resnet(2, 2, width, blocks, dropout)``; training: the
one loop (``train_forecaster``), Adam, MSE on normalised fields; RR adds ``lambda_rr`` times the reverse
pass loss with ``rr_reduction="mean"`` (our choice).

1. Speed: seconds per 100 training steps of Std and RR, in alternating rounds (wall clock and process CPU).
2. Rough skill: Std and RR trained for ``--steps`` steps per seed; latitude-weighted RMSE at 72 h on the
   test member, beside persistence and climatology. Nothing is tuned here: the numbers are a first look.

    python benchmarks/weather_forecast.py [--width 16] [--blocks 2] [--batch 32] [--steps 400]
        [--seeds 0 1] [--lambda-rr 0.1] [--lr 1e-3] [--threads 2] [--out r.json]
    python benchmarks/weather_forecast.py --speed-only [--speed-steps 100] [--rounds 2] --json

``--speed-only``: part 1 only, on random normalised fields of the simulation's grid (2 channels, 32 × 64; the
cost of a step does not depend on the values), so nothing is simulated. ``--json``: the last line printed is
one JSON object with ms per step of Std and RR (wall and CPU), RR / Std and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from _common import print_json

from racecar_core.data.shallow_water import ShallowWaterSettings, load_shallow_water
from racecar_core.data.weather import ForecastPairs, Normalizer, stack_fields
from racecar_core.forecast import evaluate_forecaster, forecast_resnet, mse, train_forecaster
from racecar_core.runs import environment
from racecar_core.training import TrainConfig, train

VARIABLES = ["z", "t"]
LEAD = 72


def data():
    ds = load_shallow_water(ShallowWaterSettings(), progress=False)
    train, test = ds.isel(member=slice(0, 6)), ds.isel(member=[7])
    norm = Normalizer.fit(train, VARIABLES)
    pairs = ForecastPairs(stack_fields(norm.normalise(train), VARIABLES), LEAD)
    clim = train[VARIABLES].mean(("member", "time")).to_array().values
    return pairs, stack_fields(norm.normalise(test), VARIABLES), norm, clim


def model(args, seed: int, dropout: float = 0.0):
    torch.manual_seed(seed)
    return forecast_resnet(2, 2, width=args.width, blocks=args.blocks, dropout=dropout)


def speed(args, pairs) -> dict:
    """Milliseconds per step, alternating Std and RR rounds of ``args.speed_steps`` steps; median over rounds.
    ``pairs``: the forecast pairs, or ``None`` for random fields of the simulation's grid."""
    times = {"Std": [], "RR": []}
    steps = args.speed_steps
    generator = torch.Generator().manual_seed(0)
    fields = None if pairs is not None else (torch.randn(args.batch, 2, 32, 64, generator=generator),
                                             torch.randn(args.batch, 2, 32, 64, generator=generator))
    for _ in range(args.rounds):
        for name, lam in (("Std", 0.0), ("RR", args.lambda_rr)):
            config = TrainConfig(steps=steps, lr=args.lr, lambda_rr=lam, rr_reduction="mean", eval_every=steps, seed=0)
            net = model(args, 0)
            wall, cpu = time.perf_counter(), time.process_time()
            if pairs is None:
                train(net, fields, config, loss_fn=mse, device="cpu", progress=False)
            else:
                train_forecaster(net, pairs, config, batch_size=args.batch, device="cpu", progress=False)
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    out = {name: {"wall_ms": 1e3 * float(np.median([w for w, _ in t])) / steps,
                  "cpu_ms": 1e3 * float(np.median([c for _, c in t])) / steps} for name, t in times.items()}
    out["rr_over_std_wall"] = out["RR"]["wall_ms"] / out["Std"]["wall_ms"]
    out["rr_over_std_cpu"] = out["RR"]["cpu_ms"] / out["Std"]["cpu_ms"]
    return out


def rough(args, pairs, test, norm, clim) -> list[dict]:
    rows = []
    for seed in args.seeds:
        for name, lam in (("Std", 0.0), ("RR", args.lambda_rr)):
            config = TrainConfig(steps=args.steps, lr=args.lr, lambda_rr=lam, rr_reduction="mean",
                                 eval_every=max(args.steps // 4, 1), seed=seed)
            net = model(args, seed, args.dropout)
            started = time.perf_counter()
            result = train_forecaster(net, pairs, config, batch_size=args.batch, device="cpu", progress=False)
            seconds = time.perf_counter() - started
            table = evaluate_forecaster(result.model, test, norm, LEAD, climatology=clim)
            for r in table.to_dict("records"):
                rows.append({"variant": name, "seed": seed, "train_seconds": round(seconds, 1),
                             "final_task_loss": round(result.final("task"), 4),
                             **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--lambda-rr", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--speed-only", action="store_true", help="only the speed, on random fields (no simulation)")
    parser.add_argument("--speed-steps", type=int, default=100, help="training steps per speed round")
    parser.add_argument("--json", action="store_true", help="print the speed as one JSON line last")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.speed_only:
        result = speed(args, None)
        for name in ("Std", "RR"):
            print(f"{name:4s} {result[name]['wall_ms']:.1f} ms/step wall, {result[name]['cpu_ms']:.1f} ms/step CPU")
        print(f"RR/Std wall {result['rr_over_std_wall']:.2f}x, CPU {result['rr_over_std_cpu']:.2f}x")
        if args.json:
            print_json("weather_forecast", {"weather": result, "width": args.width, "blocks": args.blocks,
                                            "batch": args.batch, "rounds": args.rounds, "steps_per_round": args.speed_steps})
        return
    record = {"args": vars(args), "environment": environment(), "load_average_before": os.getloadavg()}
    pairs, test, norm, clim = data()
    record["train_pairs"] = len(pairs)
    if not args.skip_speed:
        record["speed"] = speed(args, pairs)
        print(json.dumps(record["speed"]), flush=True)
    record["rough"] = rough(args, pairs, test, norm, clim)
    record["load_average_after"] = os.getloadavg()
    if args.json and "speed" in record:
        print_json("weather_forecast", {"weather": record["speed"], "width": args.width, "blocks": args.blocks,
                                        "batch": args.batch, "rounds": args.rounds, "steps_per_round": args.speed_steps})
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1, default=str)


if __name__ == "__main__":
    main()
