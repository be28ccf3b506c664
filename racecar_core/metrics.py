"""Evaluation measures: accuracy and how well reverse-pass reconstructions match their inputs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import Tensor, nn

from .reverse import reverse_pass


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (the CPU for a model without parameters)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int | None = None) -> float:
    """Fraction of samples whose arg-max output equals the integer label ``y`` [N]. ``x`` [N, ...] is moved to
    the model's device, ``batch_size`` samples at a time (``None``: all at once)."""
    device, n = model_device(model), len(x)
    size = batch_size or max(n, 1)
    hits = sum(int((model(x[i : i + size].to(device)).argmax(dim=1).cpu() == y[i : i + size].cpu()).sum())
               for i in range(0, n, size))
    return hits / n


@contextlib.contextmanager
def batch_statistics(model: nn.Module) -> Iterator[nn.Module]:
    """Normalise with each batch's own statistics (BatchNorm in training mode) without changing the running
    statistics; everything else keeps its mode. This is how the RR loss sees the model during training, and
    how the authors' script evaluated test batches."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    try:
        for m in norms:
            m.train()
            m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
        yield model
    finally:
        for m, (training, momentum, tracked) in zip(norms, saved):
            m.train(training)
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


@contextlib.contextmanager
def running_statistics(model: nn.Module) -> Iterator[nn.Module]:
    """Normalise with the running statistics (BatchNorm in evaluation mode), whatever the model's mode;
    everything else keeps its mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.training for m in norms]
    try:
        for m in norms:
            m.eval()
        yield model
    finally:
        for m, training in zip(norms, saved):
            m.train(training)


BN_STATISTICS = ("batch", "running")


@torch.no_grad()
def input_reconstruction(model: nn.Module, x: Tensor, *, bn: str = "batch") -> Tensor:
    """``d'_1``: the reverse pass's reconstruction of the input ``x`` (same shape as ``x``).

    ``bn``: which statistics BatchNorm normalises with, in the forward and the reverse pass.
    ``"batch"`` (default): the batch's own, as in training and in the authors' evaluation
    (``is_training=1``); the reverse pass then normalises the reverse signal with *its* statistics, so each
    input's reconstruction depends on the others in the batch. The running statistics stay untouched
    (:func:`batch_statistics`). ``"running"``: the running statistics of the forward pass (evaluation mode);
    they are on the scale of the forward activations, and a reverse signal on another scale can be flattened
    to (nearly) the same image for every input. See ``book/method.md``.
    """
    if bn not in BN_STATISTICS:
        raise ValueError(f"bn must be one of {BN_STATISTICS}, got {bn!r}")
    with (batch_statistics if bn == "batch" else running_statistics)(model):
        d, d_rec = reverse_pass(model, x)[0]
    return d_rec.reshape(x.shape)


@torch.no_grad()
def layer_errors(model: nn.Module, x: Tensor, *, batch_stats: bool = True) -> list[float]:
    """Relative error ``‖d'_m − d_m‖ / ‖d_m‖`` of the reverse pass for every weight layer ``m`` on the batch ``x``
    (input layer first). ``batch_stats``: BatchNorm uses the batch's statistics (see :func:`batch_statistics`),
    otherwise the model's current mode decides."""
    with batch_statistics(model) if batch_stats else contextlib.nullcontext():
        return [relative_error(d_rec, d) for d, d_rec in reverse_pass(model, x)]


@torch.no_grad()
def accuracy_among(model: nn.Module, x: Tensor, y: Tensor, classes: list[int]) -> float:
    """Accuracy when the arg-max is taken over ``classes`` only (e.g. the classes seen in training)."""
    scores = model(x)[:, classes]
    return float((torch.as_tensor(classes)[scores.argmax(dim=1)] == y).float().mean())


def cosine(reconstruction: Tensor, target: Tensor) -> float:
    """Mean cosine similarity between each reconstruction and its target (1: same shape up to scale)."""
    r, x = reconstruction.reshape(len(reconstruction), -1), target.reshape(len(target), -1)
    return float(torch.nn.functional.cosine_similarity(r, x, dim=1).mean())


def relative_error(reconstruction: Tensor, target: Tensor) -> float:
    """``‖r − x‖ / ‖x‖`` over the whole batch."""
    return float((reconstruction - target).norm() / target.norm().clamp_min(1e-12))


def _as_images(batch: Tensor | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    array = batch.detach().cpu().double().numpy() if isinstance(batch, Tensor) else np.asarray(batch, dtype=float)
    return array.reshape(len(array), *shape)


def fit_gain(reconstruction: Tensor | np.ndarray, target: Tensor | np.ndarray) -> np.ndarray:
    """Per-image least-squares gain ``g = ⟨r, x⟩ / ⟨r, r⟩`` that best scales each reconstruction to its target."""
    r = np.asarray(reconstruction.detach().cpu() if isinstance(reconstruction, Tensor) else reconstruction, float)
    x = np.asarray(target.detach().cpu() if isinstance(target, Tensor) else target, float)
    r, x = r.reshape(len(r), -1), x.reshape(len(x), -1)
    return (r * x).sum(1) / np.maximum((r * r).sum(1), 1e-12)


def image_similarity(reconstruction: Tensor | np.ndarray, target: Tensor | np.ndarray, *,
                     shape: tuple[int, int] = (28, 28), data_range: float = 255.0,
                     rescale: bool = False) -> dict[str, float]:
    """Mean SSIM and PSNR (dB) between reconstructions and targets shown as 8-bit images.

    Reconstructions are clipped to ``[0, data_range]`` as an 8-bit image of them would be; with
    ``rescale`` each is first multiplied by its least-squares gain (:func:`fit_gain`), which measures the
    shape of the reconstruction independently of its scale.
    """
    r, x = _as_images(reconstruction, shape), _as_images(target, shape)
    if rescale:
        r = r * fit_gain(r, x)[:, None, None]
    r = np.clip(r, 0.0, data_range)
    ssim = [structural_similarity(a, b, data_range=data_range) for a, b in zip(r, x)]
    psnr = [peak_signal_noise_ratio(b, a, data_range=data_range) for a, b in zip(r, x)]
    return {"ssim": float(np.mean(ssim)), "psnr": float(np.mean(psnr))}


# --------------------------------------------------------------------------------------------------
# Classifiers: negative log-likelihood over training, and how much the learned functions differ
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def predict_proba(model: nn.Module, x: Tensor, batch: int = 1000) -> Tensor:
    """Softmax probabilities ``[N, K]`` of ``model``'s logits on ``x``, in batches on the model's device (float32, CPU)."""
    device = next(model.parameters()).device
    return torch.cat([torch.softmax(model(x[i : i + batch].to(device)).float(), dim=1).cpu()
                      for i in range(0, len(x), batch)])


@torch.no_grad()
def nll_and_accuracy(model: nn.Module, x: Tensor, y: Tensor, batch: int = 1000) -> tuple[float, float]:
    """Mean negative log-likelihood (nats per example: the cross-entropy of the logits) and accuracy on ``(x, y)``."""
    device = next(model.parameters()).device
    nll, hits = 0.0, 0
    for i in range(0, len(x), batch):
        logits = model(x[i : i + batch].to(device)).float()
        target = y[i : i + batch].to(device)
        nll += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
        hits += int((logits.argmax(1) == target).sum())
    return nll / len(x), hits / len(x)


def classification_evaluator(splits: dict[str, tuple[Tensor, Tensor]], batch: int = 1000):
    """An ``evaluate`` callback for :func:`racecar_core.train`: ``{"<name>_nll", "<name>_acc"}`` for every
    ``name: (x, y)`` in ``splits`` (e.g. ``{"train": ..., "test": ...}`` for Erhan et al.'s test-NLL-vs-train-NLL
    trajectories). The loop calls it in eval mode."""
    def evaluate(model: nn.Module) -> dict[str, float]:
        out = {}
        for name, (x, y) in splits.items():
            out[f"{name}_nll"], out[f"{name}_acc"] = nll_and_accuracy(model, x, y, batch)
        return out

    return evaluate


def function_spread(probabilities: Tensor | np.ndarray) -> dict[str, float]:
    """How much the functions learned from different seeds differ on the same inputs.

    ``probabilities``: ``[S, N, K]``, the predicted class probabilities of ``S >= 2`` models (seeds) on the same
    ``N`` held-out inputs. Returns, averaged over the ``S(S-1)/2`` pairs of models and over the inputs:

    * ``disagreement``: the fraction of inputs on which the two models' arg-max classes differ;
    * ``distance``: the Euclidean distance between the two probability vectors (0 .. √2);
    * ``variance``: the variance across models of the probabilities, summed over classes
      (equal to half the mean pairwise squared distance times ``(S-1)/S``).
    """
    p = torch.as_tensor(np.asarray(probabilities) if not isinstance(probabilities, Tensor) else probabilities).double()
    if p.dim() != 3 or p.shape[0] < 2:
        raise ValueError(f"probabilities must be [S >= 2 models, N inputs, K classes], got shape {tuple(p.shape)}")
    s = p.shape[0]
    labels = p.argmax(2)  # [S, N]
    disagree = distance = 0.0
    for i in range(s - 1):  # pairs (i, j > i), one model at a time to keep memory at O(S·N·K)
        disagree += float((labels[i + 1 :] != labels[i]).double().mean(1).sum())
        distance += float((p[i + 1 :] - p[i]).norm(dim=2).mean(1).sum())
    pairs = s * (s - 1) / 2
    disagree, distance = disagree / pairs, distance / pairs
    variance = p.var(dim=0, unbiased=False).sum(1).mean()
    return {"disagreement": float(disagree), "distance": float(distance), "variance": float(variance)}
