"""Data-driven weather forecasting: a periodic ResNet, its training with the one loop, and its scores.

The model is Rasp & Thuerey's (2021) WeatherBench ResNet in miniature: a periodic convolution with a
7×7 kernel, ``blocks`` residual blocks of two 3×3 periodic convolutions, each followed by LeakyReLU(0.3),
BatchNorm and dropout, and a final 3×3 periodic convolution to the output variables; widths and
depths are parameters (theirs: 128 channels, 19 blocks, dropout 0.1). It is built from
:class:`racecar_core.PeriodicConv2d` and :class:`racecar_core.Residual` only, so
:func:`racecar_core.rr_loss` works on it unchanged.

Forecasts are direct (the model maps the fields at ``t`` to ``t + lead``, as theirs) and can be
applied repeatedly for longer leads. Scores are WeatherBench's, in physical units
(:mod:`racecar_core.weather`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import xarray as xr
from torch import Tensor, nn

from .data.weather import ForecastPairs, Normalizer
from .layers import PeriodicConv2d, Residual
from .training import TrainConfig, TrainResult, pick_device, train
from .weather import lat_weighted_acc, lat_weighted_rmse


def _conv_unit(in_channels: int, out_channels: int, kernel: int, dropout: float, batch_norm: bool) -> list[nn.Module]:
    layers = [PeriodicConv2d(in_channels, out_channels, kernel, padding=kernel // 2), nn.LeakyReLU(0.3)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    if dropout:
        layers.append(nn.Dropout(dropout))
    return layers


def forecast_resnet(in_channels: int, out_channels: int, *, width: int = 128, blocks: int = 19, dropout: float = 0.0,
                    batch_norm: bool = True, first_kernel: int = 7, kernel: int = 3) -> nn.Sequential:
    """A periodic ResNet mapping ``[N, in_channels, lat, lon]`` to ``[N, out_channels, lat, lon]``.

    Children: ``stem`` (a ``first_kernel`` convolution to ``width`` channels with its activation, BN and
    dropout), ``blocks`` (a Sequential of residual blocks with identity shortcuts) and ``head`` (a
    ``kernel`` convolution to ``out_channels``, linear). Every convolution keeps the grid size.
    """
    if min(in_channels, out_channels, width) < 1 or blocks < 0 or not 0 <= dropout < 1:
        raise ValueError(f"need channels >= 1, blocks >= 0, 0 <= dropout < 1; got in {in_channels}, out {out_channels}, "
                         f"width {width}, blocks {blocks}, dropout {dropout}")
    if first_kernel % 2 == 0 or kernel % 2 == 0:
        raise ValueError(f"kernel sizes must be odd to keep the grid size, got {first_kernel} and {kernel}")
    residual = [
        Residual(nn.Sequential(*_conv_unit(width, width, kernel, dropout, batch_norm),
                               *_conv_unit(width, width, kernel, dropout, batch_norm)))
        for _ in range(blocks)
    ]
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(*_conv_unit(in_channels, width, first_kernel, dropout, batch_norm)),
        blocks=nn.Sequential(*residual),
        head=PeriodicConv2d(width, out_channels, kernel, padding=kernel // 2),
    ))


def mse(output: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over every element (the loss on normalised fields)."""
    return F.mse_loss(output, target)


def train_forecaster(model: nn.Module, pairs: ForecastPairs, config: TrainConfig, *, batch_size: int = 32,
                     evaluate=None, run_dir=None, identity: Mapping[str, Any] | None = None,
                     device: str | torch.device | None = "auto", progress: bool | str = True) -> TrainResult:
    """Train ``model`` on the forecast ``pairs`` with :func:`racecar_core.train` and the MSE on normalised fields.

    ``config``: steps, learning rate, ``lambda_rr`` / ``rr_reduction`` for RR, seed (which also orders the
    batches). Checkpoints, resuming and the history are those of the training loop.
    """
    return train(model, pairs.batches(batch_size, seed=config.seed), config, loss_fn=mse, evaluate=evaluate,
                 run_dir=run_dir, identity=identity, device=device, progress=progress)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, *, steps: int = 1, batch_size: int = 64,
            device: str | torch.device | None = None) -> Tensor:
    """The model applied ``steps`` times to ``x`` (eval mode, in batches); returns a CPU tensor.

    Repeated application needs the output to be a valid input (same channels, inputs at offset 0 only).
    ``device``: default, where the model's parameters are.
    """
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = pick_device(device)
    was_training = model.training
    model.eval()
    try:
        outputs = []
        for start in range(0, len(x), batch_size):
            state = x[start:start + batch_size].to(device)
            for _ in range(steps):
                state = model(state)
            outputs.append(state.float().cpu())
        return torch.cat(outputs)
    finally:
        model.train(was_training)


def evaluate_forecaster(model: nn.Module, fields: xr.DataArray, norm: Normalizer, model_lead_hours: int,
                        leads_hours: Sequence[int] | None = None, *, climatology: np.ndarray | None = None,
                        convention: str = "weatherbench", batch_size: int = 64,
                        device: str | torch.device | None = None) -> pd.DataFrame:
    """Latitude-weighted RMSE (physical units) per variable and lead, beside persistence and climatology.

    ``fields``: normalised test data from :func:`racecar_core.data.weather.stack_fields`; ``norm``: the
    training statistics; ``model_lead_hours``: the model's lead; ``leads_hours``: multiples of it (the
    model applied repeatedly; default: its own lead); ``climatology``: ``[channels, lat, lon]`` in
    physical units from the training data (adds its RMSE and the ACC of model and persistence). One row
    per (variable, lead): ``rmse``, ``rmse_persistence``, and with a climatology ``rmse_climatology``,
    ``acc``, ``acc_persistence``.
    """
    leads = [model_lead_hours] if leads_hours is None else list(leads_hours)
    if any(lead % model_lead_hours or lead <= 0 for lead in leads):
        raise ValueError(f"leads_hours must be positive multiples of the model's lead {model_lead_hours} h, got {leads}")
    lat = fields.lat.values
    rows = []
    for lead in leads:
        pairs = ForecastPairs(fields, lead)
        x, truth = pairs.tensors()
        forecast = norm.denormalise(predict(model, x, steps=lead // model_lead_hours, batch_size=batch_size,
                                            device=device))
        truth, persistence = norm.denormalise(truth), norm.denormalise(pairs.persistence())
        for c, name in enumerate(norm.variables):
            row = {"variable": name, "lead_hours": lead, "samples": len(pairs),
                   "rmse": lat_weighted_rmse(forecast[:, c], truth[:, c], lat, convention=convention),
                   "rmse_persistence": lat_weighted_rmse(persistence[:, c], truth[:, c], lat, convention=convention)}
            if climatology is not None:
                clim = np.asarray(climatology)[c]
                row["rmse_climatology"] = lat_weighted_rmse(np.broadcast_to(clim, truth[:, c].shape), truth[:, c], lat,
                                                            convention=convention)
                row["acc"] = lat_weighted_acc(forecast[:, c], truth[:, c], clim, lat)
                row["acc_persistence"] = lat_weighted_acc(persistence[:, c], truth[:, c], clim, lat)
            rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["evaluate_forecaster", "forecast_resnet", "mse", "predict", "train_forecaster"]
