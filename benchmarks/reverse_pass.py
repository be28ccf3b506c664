"""Cost of the reverse pass.

(a) Training-step time of RR over Std (forward, loss, backward, Adam step) for the peak MLP and a small
    conv net; the reverse pass should cost about one more forward and backward pass. ResNet-20 (batch 128,
    the ResNet chapter's step: SGD, RR with mean reduction, see ``resnet_throughput.py``) as well, unless
    ``--no-resnet``; it has no hand-written reverse pass, so (b) is not measured for it.
(b) The generic reverse pass (tape + rule registry) against a hand-written reverse pass of the same
    model: forward + reverse + backward of the RR loss.

    python benchmarks/reverse_pass.py [--threads N] [--device cpu|cuda] [--clock wall|cpu] [--out results.json] [--json]

Times are medians over alternating rounds (the order reversed every other round).
``--clock cpu`` measures the process's CPU time instead of wall
time: with ``--threads 1`` on a CPU that is shared with other jobs it is far less noisy than wall time
(time spent waiting for a core is not counted), so use it for the ratios on a busy machine.

With ``--json`` the last line printed is one JSON object,
``{"peak_mlp": {"std_ms", "rr_ms", "rr_over_std", "rr_handwritten_ms", "rr_handwritten_over_std", "generic_ms",
"handwritten_ms", "generic_over_handwritten"},
"conv": {...}, "resnet20": {"std_ms", "rr_ms", "rr_over_std"}, "machine": {...}}``, to compare between commits.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from _common import alternating_ms, print_json
from resnet_throughput import make_step
from torch import nn

from racecar_core.models import peak_mlp
from racecar_core.reverse import reconstruction_loss, record, reverse
from racecar_core.runs import environment, metrics_record


def conv_net() -> nn.Sequential:
    """A small MNIST-sized conv net: 3 conv layers with BN and ReLU, then a linear classifier."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )


def hand_written_reverse_peak(model: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and reverse pass of the peak MLP written out by hand (the authors' formulas)."""
    l1, bn1, _, l2, bn2, _ = model
    h1 = F.relu(bn1(l1(x)))
    out = F.relu(bn2(l2(h1)))
    h1_rec = F.relu(F.batch_norm((out - l2.bias) @ l2.weight, None, None, bn1.weight, bn1.bias, True, 0.0, bn1.eps))
    x_rec = (h1_rec - l1.bias) @ l1.weight
    return out, 0.5 * F.mse_loss(x_rec, x, reduction="sum") + 0.5 * F.mse_loss(h1_rec, h1, reduction="sum")


def hand_written_reverse_conv(model: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and reverse pass of :func:`conv_net` written out by hand."""
    c1, b1, _, c2, b2, _, c3, b3, _, _, fc = model
    h1 = F.relu(b1(c1(x)))
    h2 = F.relu(b2(c2(h1)))
    h3 = F.relu(b3(c3(h2)))
    out = fc(h3.flatten(1))

    def bn(layer, t):
        return F.batch_norm(t, None, None, layer.weight, layer.bias, True, 0.0, layer.eps)

    h3_rec = F.relu(bn(b3, ((out - fc.bias) @ fc.weight).reshape(h3.shape)))
    h2_rec = F.relu(bn(b2, F.conv_transpose2d(h3_rec - c3.bias.view(1, -1, 1, 1), c3.weight, stride=2, padding=1,
                                              output_padding=1)))
    h1_rec = F.relu(bn(b1, F.conv_transpose2d(h2_rec - c2.bias.view(1, -1, 1, 1), c2.weight, stride=2, padding=1,
                                              output_padding=1)))
    x_rec = F.conv_transpose2d(h1_rec - c1.bias.view(1, -1, 1, 1), c1.weight, padding=1)
    loss = sum(0.5 * F.mse_loss(r, d, reduction="sum") for d, r in ((x, x_rec), (h1, h1_rec), (h2, h2_rec), (h3, h3_rec)))
    return out, loss


CASES = {
    "peak MLP 784-128-2, batch 100": (peak_mlp, lambda: torch.rand(100, 784) * 255, 2, hand_written_reverse_peak),
    "conv net 3 conv + fc, batch 128, 28x28": (conv_net, lambda: torch.rand(128, 1, 28, 28), 10, hand_written_reverse_conv),
}
SHORT = {"peak MLP 784-128-2, batch 100": "peak_mlp", "conv net 3 conv + fc, batch 128, 28x28": "conv"}


def run(device: str, min_run_time: float, clock=time.perf_counter, rounds: int = 5) -> dict:
    results = {}
    for name, (make_model, make_x, classes, hand_written) in CASES.items():
        torch.manual_seed(0)
        model = make_model().to(device)
        x = make_x().to(device)
        y = torch.randint(0, classes, (len(x),), device=device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

        def std_step():
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sync()

        def rr_step():
            out, tape = record(model, x)
            loss = F.cross_entropy(out, y) + 1e-6 * reconstruction_loss(reverse(tape))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sync()

        def rr_hand_step():  # the same step with the hand-written reverse pass: what any caching of the walk could reach
            out, rr = hand_written(model, x)
            loss = F.cross_entropy(out, y) + 1e-6 * rr
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sync()

        def generic_reverse():
            out, tape = record(model, x)
            reconstruction_loss(reverse(tape)).backward()
            sync()

        def hand_reverse():
            out, loss = hand_written(model, x)
            loss.backward()
            sync()

        # the two reverse passes compute the same loss
        _, tape = record(model, x)
        generic_value = reconstruction_loss(reverse(tape)).item()
        hand_value = hand_written(model, x)[1].item()
        assert abs(generic_value - hand_value) <= 1e-4 * abs(hand_value), (generic_value, hand_value)

        functions = {"std_step": std_step, "rr_step": rr_step, "rr_hand_step": rr_hand_step,
                     "generic_reverse": generic_reverse, "hand_reverse": hand_reverse}
        t = alternating_ms(functions, rounds, warmup=5, clock=clock, seconds_per_round=min_run_time / rounds)
        t["rr_over_std"] = t["rr_step"] / t["std_step"]
        t["rr_hand_over_std"] = t["rr_hand_step"] / t["std_step"]
        t["generic_over_hand"] = t["generic_reverse"] / t["hand_reverse"]
        results[name] = t
    return results


def run_resnet(device: str, rounds: int, calls: int, clock=time.perf_counter) -> dict:
    """Std and RR training steps of ResNet-20, batch 128 (the ResNet chapter's step), alternating rounds."""
    steps = {name: make_step(20, 128, device, lam, amp=False, channels_last=False) for name, lam in (("Std", 0.0), ("RR", 0.1))}
    t = alternating_ms(steps, rounds, calls, warmup=1, clock=clock)
    return {"std_step": t["Std"], "rr_step": t["RR"], "rr_over_std": t["RR"] / t["Std"]}


def json_summary(results: dict) -> dict:
    out = {}
    for name, t in results.items():
        short = SHORT.get(name, name)
        out[short] = {"std_ms": t["std_step"], "rr_ms": t["rr_step"], "rr_over_std": t["rr_over_std"]}
        if "generic_reverse" in t:
            out[short].update(rr_handwritten_ms=t["rr_hand_step"], rr_handwritten_over_std=t["rr_hand_over_std"],
                              generic_ms=t["generic_reverse"], handwritten_ms=t["hand_reverse"],
                              generic_over_handwritten=t["generic_over_hand"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--min-run-time", type=float, default=5.0, help="seconds of timing per function")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or the process's CPU time (steadier on a shared machine with --threads 1)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (the median is reported)")
    parser.add_argument("--no-resnet", action="store_true", help="skip ResNet-20 (the slowest case)")
    parser.add_argument("--resnet-calls", type=int, default=2, help="ResNet-20 steps per round")
    parser.add_argument("--out", help="write the results with their provenance to this JSON file")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON line last")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and args.device == "cuda":
        parser.error("--clock cpu does not see GPU time; use the wall clock on a GPU")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    results = run(args.device, args.min_run_time, clock, args.rounds)
    if not args.no_resnet:
        results["resnet20"] = run_resnet(args.device, args.rounds, args.resnet_calls, clock)
    print(f"device: {environment()['device']}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"clock {args.clock}")
    for name, t in results.items():
        print(f"\n{name}")
        print(f"  training step  Std {t['std_step']:.3f} ms   RR {t['rr_step']:.3f} ms   RR/Std {t['rr_over_std']:.2f}x")
        if "rr_hand_step" in t:
            print(f"  training step  RR with the hand-written reverse pass {t['rr_hand_step']:.3f} ms   "
                  f"/Std {t['rr_hand_over_std']:.2f}x")
        if "generic_reverse" not in t:
            continue
        print(f"  reverse pass   generic {t['generic_reverse']:.3f} ms   hand-written {t['hand_reverse']:.3f} ms   "
              f"generic/hand {t['generic_over_hand']:.3f}x")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(metrics_record("benchmark:reverse_pass", vars(args), results), f, indent=1)
    if args.json:
        print_json("reverse_pass", {**json_summary(results), "clock": args.clock, "device": args.device})


if __name__ == "__main__":
    main()
