"""Evaluation measures: accuracy, how well reverse-pass reconstructions match their inputs, and distances
between sets of feature vectors for generative models (Fréchet and kernel distance, precision and recall,
class coverage)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.spatial.distance
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
    device = model_device(model)
    return torch.cat([torch.softmax(model(x[i : i + batch].to(device)).float(), dim=1).cpu()
                      for i in range(0, len(x), batch)])


@torch.no_grad()
def nll_and_accuracy(model: nn.Module, x: Tensor, y: Tensor, batch: int = 1000) -> tuple[float, float]:
    """Mean negative log-likelihood (nats per example: the cross-entropy of the logits) and accuracy on ``(x, y)``."""
    device = model_device(model)
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


# --------------------------------------------------------------------------------------------------
# Distances between sets of feature vectors (generated vs real images), all on numpy arrays [n, d]
# --------------------------------------------------------------------------------------------------


def _features(a, name: str, min_rows: int = 2) -> np.ndarray:
    a = np.asarray(a.detach().cpu() if isinstance(a, Tensor) else a, dtype=np.float64)
    if a.ndim != 2 or len(a) < min_rows or a.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array [n, d] with n >= {min_rows}, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return a


def _pair(a, b, min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    a, b = _features(a, "features_a", min_rows), _features(b, "features_b", min_rows)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    return a, b


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    values, vectors = scipy.linalg.eigh(cov)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [n, d]:
    ``‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½)`` (covariances with ``n − 1``).

    ``tr (Σ_a Σ_b)^½`` is the sum of the square roots of the eigenvalues of the symmetric PSD matrix
    ``Σ_a^½ Σ_b Σ_a^½``: real and stable also for singular covariances.
    """
    a, b = _pair(features_a, features_b)
    mu = a.mean(0) - b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _psd_sqrt(cov_a)
    cross = np.sqrt(np.clip(scipy.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(mu @ mu + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


class KernelDistance(NamedTuple):
    """Mean and standard deviation of the unbiased MMD² estimate over subsets."""

    mean: float
    std: float


def _cubic_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased estimate of MMD² with the kernel ``k(x, y) = (xᵀy / d + 1)³`` between samples ``x`` and ``y``."""
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = _cubic_kernel(x, x), _cubic_kernel(y, y), _cubic_kernel(x, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def kernel_distance(features_a, features_b, *, subsets: int = 20, subset_size: int = 1000, seed: int = 0) -> KernelDistance:
    """KID-style kernel distance (Bińkowski et al. 2018): the unbiased MMD² with the cubic polynomial kernel
    ``(xᵀy / d + 1)³``, averaged over ``subsets`` random subsets of ``min(subset_size, n_a, n_b)`` rows of
    each set (drawn without replacement with ``seed``). Unbiased: about 0, possibly negative, for samples of
    one distribution. If both sets have at most ``subset_size`` rows, every subset is the whole set: one
    estimate, ``std`` 0."""
    a, b = _pair(features_a, features_b)
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"subsets must be >= 1 and subset_size >= 2, got {subsets}, {subset_size}")
    size = min(subset_size, len(a), len(b))
    if size == len(a) == len(b):
        return KernelDistance(mmd2_unbiased(a, b), 0.0)
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
              for _ in range(subsets)]
    return KernelDistance(float(np.mean(values)), float(np.std(values)))


def _distance_blocks(x: np.ndarray, y: np.ndarray, chunk: int = 2048):
    """Row blocks of the Euclidean distance matrix between ``x`` and ``y``: yields (row slice, block)."""
    for start in range(0, len(x), chunk):
        rows = slice(start, start + chunk)
        yield rows, scipy.spatial.distance.cdist(x[rows], y)


def knn_radii(x: np.ndarray, k: int = 3) -> np.ndarray:
    """Distance of each row of ``x`` to its ``k``-th nearest other row [n]."""
    if not 1 <= k < len(x):
        raise ValueError(f"k must be in [1, n), got k={k} for n={len(x)}")
    radii = np.empty(len(x))
    for rows, block in _distance_blocks(x, x):
        radii[rows] = np.partition(block, k, axis=1)[:, k]  # index 0 is the row itself (distance 0)
    return radii


def _coverage(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
    """Fraction of ``points`` inside at least one ball (centre, radius)."""
    inside = np.zeros(len(points), dtype=bool)
    for rows, block in _distance_blocks(points, centres):
        inside[rows] = (block <= radii[None, :]).any(axis=1)
    return float(inside.mean())


def precision_recall(real, generated, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of ``generated`` against ``real`` features.

    Each set's manifold is the union of balls around its points with radius the distance to the ``k``-th
    nearest neighbour in the same set. Precision: fraction of generated points inside the real manifold
    (quality); recall: fraction of real points inside the generated manifold (coverage of the data).
    """
    real, generated = _pair(real, generated, min_rows=k + 1)
    return {"precision": _coverage(generated, real, knn_radii(real, k)),
            "recall": _coverage(real, generated, knn_radii(generated, k))}


def class_coverage(labels, classes: int = 10) -> dict:
    """How the samples spread over ``classes`` as a classifier labels them (a mode-collapse measure).

    Returns ``shares`` [classes] (fractions summing to 1), ``entropy`` of that histogram in bits (log2(classes)
    when uniform, 0 when every sample has one label) and ``covered``: the number of classes holding at least
    half their uniform share, ``1 / (2·classes)`` (our threshold).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a non-empty 1-D integer array, got {labels.dtype} {labels.shape}")
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"labels must lie in 0..{classes - 1}, got {labels.min()}..{labels.max()}")
    shares = np.bincount(labels, minlength=classes) / len(labels)
    nonzero = shares[shares > 0]
    return {"shares": shares, "entropy": float(-(nonzero * np.log2(nonzero)).sum()) + 0.0,  # + 0.0: no −0.0
            "covered": int((shares >= 0.5 / classes).sum())}


def sample_metrics(reference, samples, sample_labels=None, *, k: int = 3, classes: int = 10,
                   kid_subsets: int = 20, kid_subset_size: int = 1000, seed: int = 0) -> dict[str, float]:
    """Every set distance between ``samples`` and ``reference`` features [n, d], as one row of scalars:
    ``frechet``, ``kernel`` and ``kernel_std`` (:func:`kernel_distance`), ``precision``, ``recall`` and, with
    ``sample_labels`` (a classifier's labels of the samples), ``class_entropy`` and ``classes_covered``.

    Fréchet distance, kernel distance and the k-NN manifolds all depend on the number of samples: compare
    numbers computed with the same sizes, and against :func:`real_floor` at those sizes.
    """
    row = {"frechet": frechet_distance(reference, samples)}
    row["kernel"], row["kernel_std"] = kernel_distance(reference, samples, subsets=kid_subsets,
                                                       subset_size=kid_subset_size, seed=seed)
    row.update(precision_recall(reference, samples, k))
    if sample_labels is not None:
        coverage = class_coverage(sample_labels, classes)
        row["class_entropy"], row["classes_covered"] = coverage["entropy"], float(coverage["covered"])
    return row


def real_floor(reference, real, real_labels=None, **kwargs) -> dict[str, float]:
    """The metrics of :func:`sample_metrics` for a second set of real images ``real`` in place of samples:
    what a generator that reproduces the data distribution would score with these sizes. ``reference`` and
    ``real`` must be disjoint (a shared row is refused); give ``real`` as many rows as the generated set."""
    a, b = _pair(reference, real)
    shared = {row.tobytes() for row in a} & {row.tobytes() for row in b}
    if shared:
        raise ValueError(f"reference and real share {len(shared)} feature row(s): the floor needs two disjoint real sets")
    return sample_metrics(a, b, real_labels, **kwargs)
