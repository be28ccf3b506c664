"""Greedy layer-wise autoencoder pretraining (the paper's baseline "Pre"), built on the tied reverse pass.

Classic greedy pretraining (Bengio et al., 2007) trains one layer at a time as an autoencoder of the layer
below it, then trains the whole network on the task. Here the autoencoder of weight layer ``m`` is the
layer's own step of the *local* reverse pass (lRR, :func:`racecar_core.reverse` with ``mode="local"``):

    encode  d_{m+1} = f_m(W_m d_m + b_m)              (the forward pass, as trained later)
    decode  d'_m    = f_{m-1}(W_mᵀ (d_{m+1} - b_m))   (tied weights: the transpose of the same W_m)

and its loss is ``½‖d_m − d'_m‖²`` (:func:`racecar_core.reconstruction_loss` of that one pair). Only
``W_m`` and ``b_m`` are trained while layer ``m`` is pretrained; the layers below it are frozen at their
pretrained values, so ``d_m`` is fixed. Because it goes through the same reverse rules, it works for any
model the reverse pass supports (normalisation and activation are applied as in :mod:`racecar_core.reverse`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .reverse import Reduction, reconstruction_loss, record, reverse

__all__ = ["layer_reconstruction_errors", "pretrain_layerwise"]


def _local_pair(model: nn.Module, x: Tensor, index: int) -> tuple[Tensor, Tensor]:
    with parametrize.cached():
        _, tape = record(model, x)
        pairs = reverse(tape, "local")
    return pairs[index]


def _weight_layers_in_call_order(model: nn.Module, x: Tensor) -> list[nn.Module]:
    with torch.no_grad():
        _, tape = record(model, x[:1])
    return tape.weight_layers()


@torch.no_grad()
def layer_reconstruction_errors(model: nn.Module, x: Tensor,
                                reduction: Reduction = "mean") -> list[float]:
    """The local (per-layer autoencoder) reconstruction loss of every weight layer on ``x``, input layer first."""
    with parametrize.cached():
        _, tape = record(model, x)
        pairs = reverse(tape, "local")
    return [float(reconstruction_loss([pair], reduction)) for pair in pairs]


def pretrain_layerwise(model: nn.Module, x: Tensor, steps_per_layer: int, lr: float = 1e-3, *,
                       layers: Sequence[int] | None = None, reduction: Reduction = "mean",
                       log_every: int = 0) -> pd.DataFrame:
    """Greedy layer-wise pretraining of ``model`` on the inputs ``x`` (full batch), in place.

    For each weight layer ``m`` in ``layers`` (indices in forward call order, input layer 0; default: every
    weight layer), in increasing order: freeze every other parameter and run ``steps_per_layer`` Adam
    steps (learning rate ``lr``, a fresh optimiser per layer) on the tied autoencoder loss of that layer,
    ``reconstruction_loss([reverse(tape, "local")[m]], reduction)``. Returns a history with one row per
    logged step: ``layer`` (index), ``step``, ``loss`` (before that step; ``log_every=0`` logs the first
    and the last step of each layer) and a final row per layer with the loss after its last step.

    The model is left in the training mode it had, with every parameter's ``requires_grad`` restored.
    """
    if steps_per_layer < 0:
        raise ValueError(f"steps_per_layer must be >= 0, got {steps_per_layer}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    all_layers = _weight_layers_in_call_order(model, x)
    chosen = list(range(len(all_layers))) if layers is None else sorted(set(int(i) for i in layers))
    if any(not 0 <= i < len(all_layers) for i in chosen):
        raise ValueError(f"layers must be indices in 0..{len(all_layers) - 1}, got {list(layers)}")
    grad_flags = {p: p.requires_grad for p in model.parameters()}
    was_training = model.training
    rows: list[dict[str, float]] = []
    model.train()
    try:
        for index in chosen:
            params = list(all_layers[index].parameters())
            for p in model.parameters():
                p.requires_grad_(False)
            for p in params:
                p.requires_grad_(True)
            optimizer = torch.optim.Adam(params, lr=lr)
            for step in range(steps_per_layer):
                loss = reconstruction_loss([_local_pair(model, x, index)], reduction)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite reconstruction loss in layer {index} at step {step}")
                if step == 0 or step == steps_per_layer - 1 or (log_every and step % log_every == 0):
                    rows.append({"layer": index, "step": step, "loss": loss.detach().item()})
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                final = reconstruction_loss([_local_pair(model, x, index)], reduction)
            rows.append({"layer": index, "step": steps_per_layer, "loss": float(final)})
    finally:
        for p, flag in grad_flags.items():
            p.requires_grad_(flag)
        model.train(was_training)
    return pd.DataFrame(rows, columns=["layer", "step", "loss"])
