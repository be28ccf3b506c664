"""Cost of the pretraining experiments (racecar_core.experiments.pretraining) on the CPU: how many seeds fit.

Part 1 (MLPs after Erhan et al.): one seed of every arm (Std, DAE, RR) at every depth (1 and 3 hidden layers)
is one "seed"; it is trained ``--repeats`` times (seeds 1000, 1001, ...) with the default ``MLPSettings``
and the default data (50 training and 100 test images per digit). Reported per run: CPU seconds of the
process (``time.process_time``; a proxy for the wall time on an idle core) and wall seconds; per seed: their
sum; and how many seeds fit into ``--budget`` seconds (default 150, the ~2.5 minutes part 1 may take) when
the runs go one after the other on one thread, and on two cores with two worker processes (twice that, the
ideal). Part 2 (the convolutional autoencoder after Dong et al.): one seed of every arm with the default
``ConvSettings`` (30 labels per digit), pretraining and fine-tuning timed separately, with the test accuracy.

The machine's load (``os.getloadavg``) is recorded before and after: on a busy machine the wall times,
and to a smaller degree the CPU times, are too high.

    python benchmarks/pretraining.py [--threads 1] [--repeats 2] [--budget 150] [--part 1 2] [--out r.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from racecar_core.experiments import pretraining as P
from racecar_core.runs import environment, metrics_record


def part1(repeats: int, budget: float) -> dict:
    data = P.load_mlp_data()
    settings = P.MLPSettings()
    P.train_mlp("Std", 1, 999, data, settings)  # warm-up: the first step imports and initialises lazily
    rows = []
    for seed in range(1000, 1000 + repeats):
        for depth in (1, 3):
            for arm in P.MLP_ARMS:
                run = P.train_mlp(arm, depth, seed, data, settings)
                rows.append({"seed": seed, "hidden_layers": depth, "arm": arm,
                             "cpu": run.seconds["pretrain_cpu"] + run.seconds["train_cpu"],
                             "wall": run.seconds["pretrain_wall"] + run.seconds["train_wall"],
                             **{k: float(run.result.history.iloc[-1][k]) for k in ("test_nll", "test_acc")}})
    per_seed_cpu = sum(r["cpu"] for r in rows) / repeats
    per_seed_wall = sum(r["wall"] for r in rows) / repeats
    return {"settings": P.json_safe(settings.identity()), "data": data.name, "runs": rows,
            "seed_cpu_s": per_seed_cpu, "seed_wall_s": per_seed_wall,
            "seeds_in_budget_one_thread": int(budget // per_seed_cpu),
            "seeds_in_budget_two_processes": int(2 * budget // per_seed_cpu)}


def part2() -> dict:
    data = P.load_conv_data()
    settings = P.ConvSettings()
    results = P.run_conv(data, settings, seeds=[1000], progress=False)
    frame = results.frame.merge(results.pretrain_frame[["arm", "seed", "pretrain_cpu", "pretrain_wall"]],
                                on=["arm", "seed"], how="left").fillna({"pretrain_cpu": 0.0, "pretrain_wall": 0.0})
    return {"settings": P.json_safe(settings.identity()), "data": data.name, "runs": frame.to_dict(orient="records"),
            "seed_cpu_s": float(frame.pretrain_cpu.sum() + frame.finetune_cpu.sum()),
            "seed_wall_s": float(frame.pretrain_wall.sum() + frame.finetune_wall.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--repeats", type=int, default=2, help="part 1: seeds to time")
    parser.add_argument("--budget", type=float, default=150.0, help="part 1: seconds available (default 150)")
    parser.add_argument("--part", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    parser.add_argument("--out", help="write the results with their provenance to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"load_before": os.getloadavg(), "threads": args.threads, "cores": os.cpu_count()}
    start = time.perf_counter()
    if 1 in args.part:
        r = result["part1"] = part1(args.repeats, args.budget)
        print(f"part 1 ({r['data']}): one seed of 3 arms x 2 depths = {r['seed_cpu_s']:.1f} s CPU, "
              f"{r['seed_wall_s']:.1f} s wall; seeds per arm in {args.budget:.0f} s: {r['seeds_in_budget_one_thread']} "
              f"(one thread, one run after the other), {r['seeds_in_budget_two_processes']} (two processes, ideal)")
        for row in r["runs"]:
            print(f"  seed {row['seed']} L{row['hidden_layers']} {row['arm']:4s} {row['cpu']:5.2f} s CPU "
                  f"{row['wall']:5.2f} s wall  test NLL {row['test_nll']:.3f}  acc {row['test_acc']:.3f}")
    if 2 in args.part:
        r = result["part2"] = part2()
        print(f"part 2 ({r['data']}): one seed of 4 arms = {r['seed_cpu_s']:.1f} s CPU, {r['seed_wall_s']:.1f} s wall")
        for row in r["runs"]:
            print(f"  {row['arm']:8s} pretrain {row['pretrain_cpu']:5.1f} s CPU ({row['pretrain_wall']:5.1f} wall), "
                  f"fine-tune {row['finetune_cpu']:5.1f} s CPU ({row['finetune_wall']:5.1f} wall), "
                  f"test acc {row['test_acc']:.3f}")
    result.update(load_after=os.getloadavg(), total_wall_s=time.perf_counter() - start)
    env = environment()
    print(f"device: {env['device']}, torch {torch.__version__}, threads {args.threads}, "
          f"load average before/after {result['load_before'][0]:.1f}/{result['load_after'][0]:.1f} on {os.cpu_count()} cores")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(metrics_record("benchmark:pretraining", vars(args), result), f, indent=1, default=float)


if __name__ == "__main__":
    main()
