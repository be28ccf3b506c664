"""``torch.compile`` of the training step, both arms compiled so that the RR / Std ratio stays fair.

The loss computation (forward, for RR also the tape and the reverse pass, and the loss) is compiled with
``torch.compile`` (default mode, inductor); backward and the fused Adam step run as usual. Cases: the peak MLP
(784-128-2, batch 100) and the small conv net of ``reverse_pass.py`` (batch 128). Eager and compiled steps are
timed in alternating rounds (median); the first compiled call (compilation) is reported separately, as are
dynamo's graph breaks (the tape's forward hooks are registered inside a generator, which dynamo does not trace:
the RR loss function is then run eagerly frame by frame).

    python benchmarks/compile_step.py [--cases peak_mlp conv] [--rounds 5] [--clock cpu|wall] [--json]

Slow to start (about half a minute of compilation per case and arm), so ``make bench`` leaves it out.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import torch
import torch.nn.functional as F
from _common import alternating_ms, print_json
from reverse_pass import conv_net

from racecar_core.models import peak_mlp
from racecar_core.reverse import reconstruction_loss, record, reverse

CASES = {"peak_mlp": (peak_mlp, lambda: torch.rand(100, 784) * 255, 2),
         "conv": (conv_net, lambda: torch.rand(128, 1, 28, 28), 10)}


def make_step(case: str, rr: bool, compiled: bool):
    make_model, make_x, classes = CASES[case]
    torch.manual_seed(0)
    model = make_model()
    x, y = make_x(), torch.randint(0, classes, (len(make_x()),))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)

    def loss_fn(x, y):
        if not rr:
            return F.cross_entropy(model(x), y)
        out, tape = record(model, x)
        return F.cross_entropy(out, y) + 1e-6 * reconstruction_loss(reverse(tape))

    fn = torch.compile(loss_fn) if compiled else loss_fn

    def step():
        loss = fn(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds-per-round", type=float, default=0.3)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the results as one JSON line last")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    results = {}
    for case in args.cases:
        steps, compile_s, breaks, same = {}, {}, {}, {}
        for arm, rr in (("std", False), ("rr", True)):
            eager, compiled = make_step(case, rr, False), make_step(case, rr, True)
            torch._dynamo.utils.counters.clear()
            start = time.perf_counter()
            loss_c = compiled()
            compile_s[arm] = time.perf_counter() - start
            breaks[arm] = sum(Counter(torch._dynamo.utils.counters["graph_break"]).values())
            same[arm] = abs(loss_c.item() - eager().item()) <= 1e-4 * abs(loss_c.item())  # first losses agree
            steps[f"{arm}_eager"], steps[f"{arm}_compiled"] = eager, compiled
        t = alternating_ms(steps, args.rounds, warmup=3, clock=clock, seconds_per_round=args.seconds_per_round)
        results[case] = {**{f"{k}_ms": v for k, v in t.items()},
                         "rr_over_std_eager": t["rr_eager"] / t["std_eager"],
                         "rr_over_std_compiled": t["rr_compiled"] / t["std_compiled"],
                         "compiled_over_eager_std": t["std_compiled"] / t["std_eager"],
                         "compiled_over_eager_rr": t["rr_compiled"] / t["rr_eager"],
                         "compile_seconds": compile_s, "graph_breaks": breaks, "first_loss_agrees": same}
        r = results[case]
        print(f"{case}: Std eager {t['std_eager']:.2f} ms, compiled {t['std_compiled']:.2f} ms; RR eager {t['rr_eager']:.2f} ms, "
              f"compiled {t['rr_compiled']:.2f} ms; RR/Std eager {r['rr_over_std_eager']:.2f}, compiled "
              f"{r['rr_over_std_compiled']:.2f}; compilation {compile_s['std']:.0f} s / {compile_s['rr']:.0f} s; "
              f"graph breaks {breaks}")
    if args.json:
        print_json("compile_step", {**results, "clock": args.clock})


if __name__ == "__main__":
    main()
