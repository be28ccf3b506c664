"""Choose λ_RR and the denoising corruption of the pretraining experiments on validation images; a script, not a test.

Neither Erhan et al. nor Dong et al. used RR, and our small versions of their setups are not theirs, so the
arms' free settings are chosen here, the same way for every arm that has one, on validation images that
are neither training nor test images, with seeds disjoint from the experiments' (0 .. seeds-1):

* part 1 (MLPs, ``MLPSettings`` defaults otherwise): ``RR``'s ``lambda_rr`` and ``DAE``'s masking fraction,
  each the grid value with the lowest final validation NLL, averaged over the seeds and both depths
  (1 and 3 hidden layers); validation: the last ``--val-per-class`` images per digit of the training split;
* part 2 (convolutional, ``ConvSettings`` defaults otherwise): ``RR``'s ``lambda_rr``, the grid value with the
  lowest final validation NLL (first seed only: these runs are slow); validation: the last ``--val-per-class``
  images per digit of the training split
  (not among the labelled ones; they are among the unlabelled images, as every training image is).

The learning rates are not chosen here: ``MLPSettings.lr`` is the rate at which Std reaches the converged
regime (training NLL < 0.01 at both depths within its steps; 3e-3 did not), ``ConvSettings.lr`` the rate at which
a randomly initialised encoder's training loss falls to about 0.2 within its steps (1e-3 left it near 1.0).
The result goes to ``book/data/pretraining_settings.json`` with the grids, the seeds, every run and the code
version; a part not run keeps its results from an existing file.

    python scripts/pretraining_settings.py [--part 1 2] [--seeds 100 101] [--out PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere without installing

MLP_LAMBDAS = (0.1, 0.3, 1.0, 3.0, 10.0)
MASKING = (0.1, 0.25, 0.5)
CONV_LAMBDAS = (0.001, 0.01, 0.1, 1.0)
OUT = ROOT / "book" / "data" / "pretraining_settings.json"


def part1(seeds: list[int], val_per_class: int) -> tuple[dict, list[dict]]:
    from racecar_core.corruption import Corruption
    from racecar_core.experiments import pretraining as P

    base = P.MLPSettings()
    data = P.load_mlp_data(train_per_class=50, test_per_class=1, val_per_class=val_per_class)
    rows = []
    candidates = [("RR", "lambda_rr", lam, dataclasses.replace(base, lambda_rr=lam)) for lam in MLP_LAMBDAS]
    candidates += [("DAE", "masking", m, dataclasses.replace(base, corruption=Corruption("masking", m))) for m in MASKING]
    for arm, name, value, settings in candidates:
        for depth in (1, 3):
            for seed in seeds:
                last = P.train_mlp(arm, depth, seed, data, settings).result.history.iloc[-1]
                rows.append({"part": 1, "arm": arm, "setting": name, "value": value, "hidden_layers": depth,
                             "seed": seed, "val_nll": float(last["val_nll"]), "train_nll": float(last["train_nll"])})
                print(rows[-1], flush=True)
    chosen = {}
    for arm, name in (("RR", "lambda_rr"), ("DAE", "masking")):
        means = {}
        for row in rows:
            if row["arm"] == arm:
                means.setdefault(row["value"], []).append(row["val_nll"])
        chosen[name] = min(means, key=lambda v: (sum(means[v]) / len(means[v]), v))
    return chosen, rows


def part2(seeds: list[int], val_per_class: int) -> tuple[dict, list[dict]]:
    import numpy as np
    import torch

    from racecar_core.data.tasks import image_splits, make_task
    from racecar_core.experiments import pretraining as P
    from racecar_core.metrics import nll_and_accuracy

    base = P.ConvSettings()
    data = P.load_conv_data()
    splits = image_splits("mnist5k")
    val = make_task("val", splits, range(10), 1, val_per_class, 1)
    labelled = {a.tobytes() for a in data.x_train}
    assert not labelled & {a.tobytes() for a in val.x_val}, "validation images must not be labelled training images"
    x_val, y_val = data.tensor(val.x_val), torch.from_numpy(val.y_val)
    rows = []
    for lam in CONV_LAMBDAS:
        for seed in seeds:
            result = P.finetune("RR", data, dataclasses.replace(base, lambda_rr=lam), seed)
            nll, acc = nll_and_accuracy(result.model, x_val, y_val, 500)
            rows.append({"part": 2, "arm": "RR", "setting": "lambda_rr", "value": lam, "seed": seed, "val_nll": nll,
                         "val_acc": acc})
            print(rows[-1], flush=True)
    means = {lam: np.mean([r["val_nll"] for r in rows if r["value"] == lam]) for lam in CONV_LAMBDAS}
    return {"lambda_rr": min(means, key=lambda v: (means[v], v))}, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101])
    parser.add_argument("--val-per-class", type=int, default=100)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()

    import torch

    from racecar_core.runs import metrics_record, write_json

    torch.set_num_threads(1)
    start = time.perf_counter()
    chosen, runs = {}, []
    if Path(args.out).exists():  # keep the results of the part not run now
        import json

        previous = json.loads(Path(args.out).read_text())["results"]
        for part, key in ((1, "mlp"), (2, "conv")):
            if part not in args.part and key in previous["chosen"]:
                chosen[key] = previous["chosen"][key]
                runs += [r for r in previous["runs"] if r["part"] == part]
    if 1 in args.part:
        c, r = part1(args.seeds, args.val_per_class)
        chosen["mlp"], runs = c, runs + r
    if 2 in args.part:
        c, r = part2(args.seeds[:1], args.val_per_class)
        chosen["conv"], runs = c, runs + r
    params = {"script": "scripts/pretraining_settings.py", "seeds": args.seeds, "val_per_class": args.val_per_class,
              "grids": {"mlp_lambda_rr": MLP_LAMBDAS, "mlp_masking": MASKING, "conv_lambda_rr": CONV_LAMBDAS},
              "criterion": "lowest mean final validation NLL", "parts_run": args.part}
    record = metrics_record("pretraining-settings", params, {"chosen": chosen, "runs": runs,
                                                              "seconds": time.perf_counter() - start})
    write_json(args.out, record)
    print("chosen:", chosen, "->", args.out)


if __name__ == "__main__":
    main()
