"""Task losses and the orthogonality baseline (SRIP). The RR loss itself is :func:`racecar_core.rr_loss`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .reverse import weight_layers


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of integer ``labels`` [N] under ``softmax(logits)`` [N, K]."""
    return F.cross_entropy(logits, labels)


def double_softmax_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """The authors' TensorFlow loss: ``softmax`` applied to the logits, then a cross-entropy that applies
    ``softmax`` again (``softmax_cross_entropy_with_logits(logits=softmax(z))``). Its gradient vanishes
    as the probabilities saturate, so the weights stop growing once the training set is fitted."""
    return F.cross_entropy(torch.softmax(logits, dim=-1), labels)


def _gram_deviation(weight: Tensor) -> Tensor:
    """``W Wᵀ − I`` over output units, with ``W`` reshaped to ``[out, fan_in]``."""
    w = weight.reshape(weight.shape[0], -1)
    return w @ w.t() - torch.eye(w.shape[0], device=w.device, dtype=w.dtype)


def srip_term(weight: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """SRIP (Bansal et al. 2018) for one weight: ``σ_max(W Wᵀ − I)²`` estimated by one power-iteration
    step from a fresh random unit vector, as in the authors' code (their ``l2_reg_ortho``).

    ``W`` is the PyTorch weight ``[out, in, *kernel]`` reshaped to ``[out, fan_in]``; the Gram matrix is
    over output units, i.e. ``KᵀK − I`` for the authors' TensorFlow kernel ``K = Wᵀ`` of a dense layer.
    """
    a = _gram_deviation(weight)
    u = torch.randn(a.shape[0], 1, generator=generator, device=a.device, dtype=a.dtype)
    u = F.normalize(u, dim=0, eps=1e-12)
    v = F.normalize(a.t() @ u, dim=0, eps=1e-12)
    u = F.normalize(a @ v, dim=0, eps=1e-12)
    sigma = (u.t() @ a @ v).abs().squeeze()
    return sigma**2


def srip_loss(model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
    """Sum of :func:`srip_term` over every weight layer of ``model`` (the Ort baseline)."""
    layers = weight_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no weight layer to regularise")
    return torch.stack([srip_term(m.weight, generator) for m in layers]).sum()
