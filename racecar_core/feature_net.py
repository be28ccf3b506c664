"""A small classifier trained on real 28×28 images whose penultimate layer is the feature space of the
generative metrics (:func:`racecar_core.metrics.sample_metrics`).

This stands in for the Inception network of FID and KID, whose weights would have to be downloaded: the
distances it gives are *not* FID or KID values and are comparable only with numbers from the same classifier.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor, nn

from .batches import TensorBatches
from .metrics import accuracy
from .training import TrainConfig, train


def feature_classifier(classes: int = 10, features: int = 64, width: int = 16) -> nn.Sequential:
    """Image [B, 1, 28, 28] → logits [B, classes]: three 3×3 conv blocks (BN, ReLU; 28 → 14 → 7), a dense
    layer to ``features`` units with ReLU (the feature layer), and a linear classifier."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, 1, 1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, 2, 1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.BatchNorm2d(4 * width), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * width * 7 * 7, features), nn.ReLU(),
        nn.Linear(features, classes),
    )


def train_feature_classifier(x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, *,
                             steps: int = 600, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
                             features: int = 64, run_dir: str | os.PathLike | None = None,
                             progress: bool | str = False) -> tuple[nn.Sequential, float]:
    """Train :func:`feature_classifier` with :func:`racecar_core.train` (Adam, cross-entropy) on real images
    [N, 1, 28, 28] and return it (eval mode) with its accuracy on the held-out ``x_test``, ``y_test``."""
    torch.manual_seed(seed)
    classes = int(max(y_train.max(), y_test.max())) + 1
    model = feature_classifier(classes, features)
    config = TrainConfig(steps=steps, lr=lr, seed=seed, eval_every=steps)
    identity = {"model": "feature_classifier", "classes": classes, "features": features, "batch_size": batch_size,
                "n_train": len(x_train)}
    result = train(model, TensorBatches(x_train, y_train, batch_size, seed=seed), config, identity=identity,
                   run_dir=run_dir, progress=progress)
    return result.model, accuracy(result.model, x_test, y_test, batch_size=500)  # train() returns it in eval mode


@torch.no_grad()
def features(model: nn.Sequential, images: Tensor, batch_size: int = 500) -> np.ndarray:
    """Penultimate-layer features [N, features] (float64) of ``images`` [N, 1, 28, 28], in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    body = model[:-1]
    return torch.cat([body(part.to(device)).cpu() for part in images.split(batch_size)]).double().numpy()


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int = 500) -> np.ndarray:
    """Predicted class [N] (int64) of ``images`` [N, 1, 28, 28], in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(part.to(device)).argmax(1).cpu() for part in images.split(batch_size)]).numpy()
