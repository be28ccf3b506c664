"""Autoencoder pretraining on the one training loop: greedy layer-wise (tied, optionally denoising) and end to end.

Classic greedy pretraining (Bengio et al., 2007) trains one layer at a time as an autoencoder of the layer
below it, then trains the whole network on the task. Here the autoencoder of weight layer ``m`` is the
layer's own step of the *local* reverse pass (lRR, :func:`racecar_core.reverse` with ``mode="local"``):

    encode  d_{m+1} = f_m(W_m d̃_m + b_m)             (the forward pass, as trained later)
    decode  d'_m    = f_{m-1}(W_mᵀ (d_{m+1} - b_m))   (tied weights: the transpose of the same W_m)

and its loss is ``½‖d_m − d'_m‖²`` (:func:`racecar_core.reconstruction_loss` of that one pair). ``d̃_m`` is
the layer's input ``d_m`` after a :class:`~racecar_core.corruption.Corruption` (a denoising autoencoder,
Vincent et al., 2008) or ``d_m`` itself; the target is always the clean ``d_m``. Only ``W_m`` and ``b_m``
are trained while layer ``m`` is pretrained; the layers below it are frozen at their pretrained values.
Because it goes through the same reverse rules, it works for any model the reverse pass supports
(normalisation and activation are applied as in :mod:`racecar_core.reverse`).

Every layer is one run of :func:`racecar_core.train` with the objective :class:`LayerAutoencoder`, so
pretraining has the loop's checkpoints, exact resume, NaN stop and history. :class:`Denoising` is the
end-to-end objective for an autoencoder with its own decoder (e.g. :class:`racecar_core.SkipAutoencoder`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .batches import TensorBatches
from .corruption import Corruption
from .metrics import batch_statistics
from .reverse import Reduction, reconstruction_loss, record, reverse
from .training import Objective, StepContext, TrainConfig, TrainResult, make_optimizer, train

__all__ = ["Denoising", "LayerAutoencoder", "layer_pair", "layer_reconstruction_errors", "pretrain_layer",
           "pretrain_layerwise", "weight_layers_in_call_order"]

_NO_CORRUPTION = Corruption()


# --------------------------------------------------------------------------------------------------
# One layer's tied autoencoder
# --------------------------------------------------------------------------------------------------


def weight_layers_in_call_order(model: nn.Module, x: Tensor) -> list[nn.Module]:
    """The weight layers of ``model`` in the order a forward pass on (two examples of) ``x`` calls them.

    The probe runs in eval mode, so BatchNorm's running statistics are neither used from one example nor changed.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _, tape = record(model, x[:2])
    finally:
        model.train(was_training)
    return tape.weight_layers()


def layer_pair(model: nn.Module, x: Tensor, layer: nn.Module, corrupt=None) -> tuple[Tensor, Tensor]:
    """``(d_m, d'_m)`` of weight layer ``layer`` in the local reverse pass of ``model`` on ``x``.

    ``corrupt(d_m) -> d̃_m``: if given, ``layer`` encodes the corrupted input while ``d_m`` (the pair's
    target) and every other layer's input stay clean.
    """
    clean: dict[str, Tensor] = {}

    def corrupt_input(module: nn.Module, args: tuple):
        clean["d"] = args[0]
        return (corrupt(args[0]), *args[1:])

    handle = layer.register_forward_pre_hook(corrupt_input) if corrupt is not None else None
    try:
        with parametrize.cached():
            _, tape = record(model, x)
            if layer not in tape.inputs:
                raise ValueError(f"{type(layer).__name__} is not called in the forward pass of {type(model).__name__}")
            if corrupt is not None:
                tape.inputs[layer] = clean["d"]  # the pair's target: the clean input, as the reverse walk knows it
            pairs = reverse(tape, "local")
    finally:
        if handle is not None:
            handle.remove()
    return pairs[tape.weight_layers().index(layer)]


@contextlib.contextmanager
def _only_trainable(model: nn.Module, params: Sequence[nn.Parameter]) -> Iterator[None]:
    """Inside: ``params`` require gradients and every other parameter of ``model`` does not; restored after."""
    flags = {p: p.requires_grad for p in model.parameters()}
    chosen = {id(p) for p in params}
    try:
        for p in model.parameters():
            p.requires_grad_(id(p) in chosen)
        yield
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)


class LayerAutoencoder(Objective):
    """Greedy pretraining of one weight layer ``layer`` of the model as a tied (denoising) autoencoder.

    One step: the loss ``reconstruction_loss([layer_pair(model, x, layer, corrupt)], reduction)`` of the
    batch's inputs ``x`` (labels, if any, are ignored), and one update of an optimiser (from
    :func:`racecar_core.make_optimizer`) that holds only ``layer``'s own parameters; they are trained even
    if frozen, and no other parameter gets a gradient. Logged term: ``ae`` (on the corrupted input).
    The corruption's generator is seeded from ``config.seed`` and saved in checkpoints.
    """

    def __init__(self, layer: nn.Module, corruption: Corruption | None = None,
                 reduction: Literal["sum", "mean"] = "mean"):
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        self.layer, self.reduction = layer, reduction
        self.corruption = corruption if corruption is not None else _NO_CORRUPTION
        self.params = list(layer.parameters())
        if not self.params:
            raise ValueError(f"{type(layer).__name__} has no parameters to pretrain")

    def setup(self, model: nn.Module, config: TrainConfig, device: torch.device) -> None:
        self.generator = torch.Generator(device=device).manual_seed(config.seed + 104_729)

    def optimizers(self, model: nn.Module, config: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        with _only_trainable(model, self.params):
            return {"layer": make_optimizer(self.params, config)}

    def loss(self, model: nn.Module, x: Tensor) -> Tensor:
        """The autoencoder loss of ``x`` (corrupted with this objective's generator unless the corruption is none)."""
        corrupt = None if self.corruption.kind == "none" else (lambda d: self.corruption(d, self.generator))
        return reconstruction_loss([layer_pair(model, x, self.layer, corrupt)], self.reduction)

    def step(self, model: nn.Module, batch: tuple[Tensor, ...], ctx: StepContext) -> dict[str, Tensor]:
        with _only_trainable(model, self.params):
            loss = self.loss(model, batch[0])
            ctx.update("layer", loss, {"ae": loss})
        return {"ae": loss}

    def state_dict(self) -> dict:
        return {"corruption": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["corruption"])


class Denoising(Objective):
    """End-to-end (denoising) autoencoder: ``mean((model(corrupt(x)) − x)²)`` with one optimiser over the model.

    ``model`` maps a batch to a batch of its shape (an autoencoder); labels, if any, are ignored. Logged term:
    ``mse``. The corruption's generator is seeded from ``config.seed`` and saved in checkpoints.
    """

    def __init__(self, corruption: Corruption | None = None):
        self.corruption = corruption if corruption is not None else _NO_CORRUPTION

    def setup(self, model: nn.Module, config: TrainConfig, device: torch.device) -> None:
        self.generator = torch.Generator(device=device).manual_seed(config.seed + 104_729)

    def step(self, model: nn.Module, batch: tuple[Tensor, ...], ctx: StepContext) -> dict[str, Tensor]:
        x = batch[0]
        output = model(self.corruption(x, self.generator))
        if output.shape != x.shape:
            raise ValueError(f"an autoencoder must return its input's shape {tuple(x.shape)}, got {tuple(output.shape)}")
        loss = F.mse_loss(output, x)
        ctx.update("model", loss, {"mse": loss})
        return {"mse": loss}

    def state_dict(self) -> dict:
        return {"corruption": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["corruption"])


# --------------------------------------------------------------------------------------------------
# Greedy layer-wise pretraining
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def layer_reconstruction_errors(model: nn.Module, x: Tensor,
                                reduction: Reduction = "mean") -> list[float]:
    """The local (per-layer autoencoder) reconstruction loss of every weight layer on ``x``, input layer first."""
    with parametrize.cached():
        _, tape = record(model, x)
        pairs = reverse(tape, "local")
    return [float(reconstruction_loss([pair], reduction)) for pair in pairs]


def _clean_loss_evaluator(layer: nn.Module, x: Tensor, reduction: str):
    """``evaluate(model) -> {"loss": ...}``: the layer's autoencoder loss on the clean ``x``, BatchNorm with
    batch statistics (as in training) and its running statistics left alone."""

    @torch.no_grad()
    def evaluate(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        with batch_statistics(model):
            return {"loss": float(reconstruction_loss([layer_pair(model, x.to(device), layer)], reduction))}

    return evaluate


def pretrain_layer(model: nn.Module, data, layer: nn.Module, config: TrainConfig, *,
                   corruption: Corruption | None = None, reduction: Literal["sum", "mean"] = "mean",
                   eval_x: Tensor | None = None, run_dir: str | os.PathLike | None = None,
                   identity: Mapping[str, Any] | None = None, device: str | torch.device | None = None,
                   progress: bool | str = False) -> TrainResult:
    """Pretrain weight layer ``layer`` of ``model`` in place: :func:`racecar_core.train` with :class:`LayerAutoencoder`.

    ``data``: what ``train`` takes (the labels are ignored). ``eval_x``: inputs on which the history's ``loss``
    column (the clean autoencoder loss) is measured at step 0, every ``config.eval_every`` steps and at the
    end (default: none). ``device``: default, where the model's parameters are. The model ends in eval mode.
    """
    objective = LayerAutoencoder(layer, corruption, reduction)
    evaluate = _clean_loss_evaluator(layer, eval_x, reduction) if eval_x is not None else None
    device = device if device is not None else next(model.parameters()).device
    return train(model, data, config, objective=objective, evaluate=evaluate, run_dir=run_dir, identity=identity,
                 device=device, progress=progress)


def pretrain_layerwise(model: nn.Module, x: Tensor, steps_per_layer: int, lr: float = 1e-3, *,
                       layers: Sequence[int] | None = None, reduction: Reduction = "mean",
                       log_every: int = 0, corruption: Corruption | None = None, batch_size: int | None = None,
                       seed: int = 0, config: TrainConfig | None = None, run_dir: str | os.PathLike | None = None,
                       identity: Mapping[str, Any] | None = None, progress: bool = False) -> pd.DataFrame:
    """Greedy layer-wise pretraining of ``model`` on the inputs ``x`` ``[N, ...]``, in place.

    For each weight layer ``m`` in ``layers`` (indices in forward call order, input layer 0; default: every
    weight layer), in increasing order: ``steps_per_layer`` steps of :func:`pretrain_layer` (Adam, learning
    rate ``lr``, a fresh optimiser per layer; ``config``, if given, supplies every other setting of
    :class:`racecar_core.TrainConfig`, its ``steps``, ``lr``, ``seed`` and ``eval_every`` being replaced).
    Each step uses all of ``x`` (``batch_size=None``) or a mini-batch of ``batch_size`` inputs, shuffled
    per epoch from ``seed``; ``corruption`` makes each layer a denoising autoencoder (its randomness is
    seeded from ``seed``). With ``run_dir`` each layer's run keeps its files in ``run_dir/layer<m>/``,
    resumes after an interruption and is reloaded once finished; ``identity``: JSON-able settings outside
    these arguments that define the run (model, data), recorded there.

    Returns the history: one row per ``layer`` (index) and ``step``, with ``loss`` the layer's autoencoder
    loss on the clean ``x`` after ``step`` updates (BatchNorm with batch statistics), logged at step 0,
    every ``log_every`` steps (0: none in between) and after the last step.
    The model is left in the training mode it had, with every parameter's ``requires_grad`` restored.
    """
    if not isinstance(steps_per_layer, int) or steps_per_layer < 0:
        raise ValueError(f"steps_per_layer must be an int >= 0, got {steps_per_layer!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if batch_size is not None and not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be None (full batch) or an int >= 1, got {batch_size!r}")
    if log_every < 0:
        raise ValueError(f"log_every must be >= 0 (0: first and last step only), got {log_every}")
    all_layers = weight_layers_in_call_order(model, x)
    chosen = list(range(len(all_layers))) if layers is None else sorted(set(int(i) for i in layers))
    if any(not 0 <= i < len(all_layers) for i in chosen):
        raise ValueError(f"layers must be indices in 0..{len(all_layers) - 1}, got {list(layers)}")
    corruption = corruption if corruption is not None else _NO_CORRUPTION
    was_training = model.training
    frames = []
    try:
        for index in chosen:
            layer = all_layers[index]
            if steps_per_layer == 0:
                with torch.no_grad(), batch_statistics(model):
                    loss = float(reconstruction_loss([layer_pair(model, x, layer)], reduction))
                frames.append(pd.DataFrame({"layer": [index], "step": [0], "loss": [loss]}))
                continue
            base = config if config is not None else TrainConfig(steps=1)
            layer_config = dataclasses.replace(base, steps=steps_per_layer, lr=lr, seed=seed,
                                               eval_every=log_every or steps_per_layer,
                                               checkpoint_every=min(base.checkpoint_every, steps_per_layer))
            data = TensorBatches(x, torch.zeros(len(x)), batch_size, seed=seed)
            ident = {"pretrain": "layerwise", "layer": index, "layers": chosen, "reduction": reduction,
                     "corruption": dataclasses.asdict(corruption), "batch_size": batch_size,
                     "inputs": list(x.shape), **(dict(identity) if identity else {})}
            result = pretrain_layer(model, data, layer, layer_config, corruption=corruption, reduction=reduction,
                                    eval_x=x, run_dir=Path(run_dir) / f"layer{index}" if run_dir else None,
                                    identity=ident, progress=f"pretrain layer {index}" if progress else False)
            frames.append(result.history[["step", "loss"]].assign(layer=index)[["layer", "step", "loss"]])
    finally:
        model.train(was_training)
    if not frames:
        return pd.DataFrame(columns=["layer", "step", "loss"])
    return pd.concat(frames, ignore_index=True).astype({"layer": int, "step": int, "loss": float})
