"""Training throughput of the CIFAR ResNets: images per second for Std and RR, and the RR / Std ratio.

One training step is what the chapter's training loop does (``racecar_core.training``): forward (with
the tape for RR), cross-entropy, the RR loss of the full reverse pass (mean reduction), backward and an
SGD step with momentum and weight decay, on a random batch of 32×32×3 images in training mode. On a GPU
the step runs under bf16 autocast with channels-last tensors unless ``--no-amp`` / ``--no-channels-last``.
Std and RR are timed in alternating rounds so that drifts in machine load affect both alike. Target:
RR / Std ≤ 2.2.

    python benchmarks/resnet_throughput.py [--depth 20] [--batch 128] [--device cpu|cuda] [--threads N] [--out r.json] [--json]

With ``--json`` the last line printed is the result as one JSON object (ms per step, the ratio, the machine's load).
"""

from __future__ import annotations

import argparse
import json

import torch
from _common import print_json

from racecar_core.losses import cross_entropy
from racecar_core.resnet import cifar_resnet
from racecar_core.runs import environment, metrics_record
from racecar_core.training import Supervised, TrainConfig, make_optimizer

TARGET = 2.2


def make_step(depth: int, batch: int, device: str, lambda_rr: float, amp: bool, channels_last: bool):
    """A function running one training step of a fresh ResNet-``depth`` (Std if ``lambda_rr`` is 0)."""
    torch.manual_seed(0)
    model = cifar_resnet(depth, classes=10).to(device).train()
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    config = TrainConfig(steps=1, lr=0.1, optimizer="sgd", weight_decay=1e-4, lambda_rr=lambda_rr,
                         rr_reduction="mean", amp=amp, channels_last=channels_last)
    optimizer = make_optimizer(model.parameters(), config)
    objective = Supervised(cross_entropy)  # the chapter's objective: what one step of the training loop computes
    objective.setup(model, config, torch.device(device))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def step() -> None:
        terms = objective.terms(model, x, y, config, 0)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        sync()

    return step


def interleaved_median_s(functions: dict, rounds: int, steps: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each function over ``rounds`` alternating rounds of ``steps`` calls."""
    import time

    for fn in functions.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, fn in functions.items():
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - start) / steps)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def run(depth: int, batch: int, device: str, amp: bool, channels_last: bool, rounds: int, steps: int) -> dict:
    gpu = device.startswith("cuda")
    amp, channels_last = amp and gpu, channels_last and gpu
    steps_fn = {name: make_step(depth, batch, device, lam, amp, channels_last) for name, lam in (("Std", 0.0), ("RR", 0.1))}
    seconds = interleaved_median_s(steps_fn, rounds, steps)
    result = {f"{name}_images_per_s": batch / s for name, s in seconds.items()}
    result.update({f"{name}_step_ms": s * 1e3 for name, s in seconds.items()})
    result["rr_over_std"] = seconds["RR"] / seconds["Std"]
    result["target"] = TARGET
    result["meets_target"] = result["rr_over_std"] <= TARGET
    result.update(depth=depth, batch=batch, device=device, amp=amp, channels_last=channels_last,
                  threads=torch.get_num_threads())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=20, help="ResNet depth 6n+2 (default 20; 110 on a GPU)")
    parser.add_argument("--batch", type=int, default=128, help="images per step (He et al.: 128)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds")
    parser.add_argument("--steps", type=int, default=3, help="training steps per round")
    parser.add_argument("--no-amp", action="store_true", help="no bf16 autocast on a GPU")
    parser.add_argument("--no-channels-last", action="store_true", help="no channels-last memory format on a GPU")
    parser.add_argument("--out", help="write the results with their provenance to this JSON file")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line last")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is visible to PyTorch")
    if args.threads:
        torch.set_num_threads(args.threads)
    r = run(args.depth, args.batch, args.device, not args.no_amp, not args.no_channels_last, args.rounds, args.steps)
    env = environment()
    print(f"device: {env['device']}, torch {torch.__version__}, threads {r['threads']}, amp {r['amp']}, "
          f"channels_last {r['channels_last']}")
    print(f"ResNet-{r['depth']}, batch {r['batch']}: Std {r['Std_images_per_s']:.1f} images/s "
          f"({r['Std_step_ms']:.0f} ms/step), RR {r['RR_images_per_s']:.1f} images/s ({r['RR_step_ms']:.0f} ms/step), "
          f"RR/Std {r['rr_over_std']:.2f}x (target <= {TARGET})")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(metrics_record("benchmark:resnet_throughput", vars(args), r), f, indent=1)
    if args.json:
        print_json("resnet_throughput", {f"resnet{r['depth']}": {
            "std_ms": r["Std_step_ms"], "rr_ms": r["RR_step_ms"], "rr_over_std": r["rr_over_std"],
            "batch": r["batch"], "device": r["device"]}})


if __name__ == "__main__":
    main()
