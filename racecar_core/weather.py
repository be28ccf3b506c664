"""Scores and baselines of data-driven weather forecasting (WeatherBench, Rasp et al. 2020).

Fields are arrays ``(time, lat, lon)`` with latitude in degrees: numpy arrays (the last three axes; any
leading axes are kept) or xarray DataArrays/Datasets (dimensions ``lat``/``lon`` or
``latitude``/``longitude``; the mean runs over ``sample_dims``, default ``("time",)``, and the grid; other
dimensions such as a lead time are kept). Every grid point is weighted by ``cos(lat) / mean(cos(lat))``,
the mean taken over the latitudes of the grid, as in WeatherBench's ``score.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

Field = np.ndarray | xr.DataArray | xr.Dataset
Convention = Literal["weatherbench", "paper"]
CONVENTIONS = ("weatherbench", "paper")
LAT_NAMES, LON_NAMES = ("lat", "latitude"), ("lon", "longitude")
CLIMATOLOGY_GROUPS = ("month", "week", "dayofyear")


def lat_weights(lat) -> np.ndarray:
    """``cos(lat) / mean(cos(lat))`` for latitudes ``lat`` in degrees (their mean is 1)."""
    lat = np.asarray(lat, dtype=np.float64)
    if lat.ndim != 1 or not len(lat) or np.any(np.abs(lat) > 90) or not np.all(np.isfinite(lat)):
        raise ValueError(f"lat must be a 1-D array of latitudes in degrees within [-90, 90], got {lat!r}")
    w = np.cos(np.deg2rad(lat))
    if w.mean() < 1e-12:
        raise ValueError("the latitudes have no weight (all at the poles)")
    return w / w.mean()


def _is_xarray(x) -> bool:
    return isinstance(x, (xr.DataArray, xr.Dataset))


def _grid_dims(x: xr.DataArray | xr.Dataset) -> tuple[str, str]:
    lat = next((d for d in LAT_NAMES if d in x.dims), None)
    lon = next((d for d in LON_NAMES if d in x.dims), None)
    if lat is None or lon is None:
        raise ValueError(f"expected dimensions lat/lon (or latitude/longitude), got {tuple(x.dims)}")
    return lat, lon


def _xr_weights(x: xr.DataArray | xr.Dataset, lat=None) -> tuple[xr.DataArray, tuple[str, str]]:
    lat_dim, lon_dim = _grid_dims(x)
    values = x[lat_dim].values if lat is None else np.asarray(lat)
    return xr.DataArray(lat_weights(values), dims=[lat_dim], coords={lat_dim: x[lat_dim]}), (lat_dim, lon_dim)


def _np_weights(x: np.ndarray, lat) -> np.ndarray:
    if lat is None:
        raise ValueError("give lat (latitudes in degrees) for numpy arrays")
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[-2] != len(np.atleast_1d(lat)):
        raise ValueError(f"expected arrays (..., time, lat, lon) with {len(np.atleast_1d(lat))} latitudes, got shape {x.shape}")
    return lat_weights(lat)[:, None]


def _sample_dims(x: xr.DataArray | xr.Dataset, sample_dims: Sequence[str]) -> list[str]:
    return [d for d in sample_dims if d in x.dims]


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def lat_weighted_rmse(forecast: Field, truth: Field, lat=None, *, convention: Convention = "weatherbench",
                      sample_dims: Sequence[str] = ("time",)) -> Field:
    """Latitude-weighted root-mean-square error, in the fields' units.

    ``convention="weatherbench"`` (WeatherBench's ``compute_weighted_rmse``): ``sqrt(mean_{time,lat,lon}(w e²))``.
    ``convention="paper"`` (the time mean outside the root, as in the paper's equation):
    ``mean_time sqrt(mean_{lat,lon}(w e²))``. Numpy: arrays ``(..., time, lat, lon)`` (or ``(lat, lon)``)
    and ``lat`` in degrees; returns a float or an array over the leading axes. xarray: ``lat`` is read from
    the coordinates; returns the mean over ``sample_dims`` and the grid, other dimensions kept.
    """
    _check_convention(convention)
    if _is_xarray(forecast) or _is_xarray(truth):
        error = forecast - truth
        w, grid = _xr_weights(error, lat)
        samples = _sample_dims(error, sample_dims)
        if convention == "weatherbench":
            return np.sqrt((error**2 * w).mean([*samples, *grid]))
        return np.sqrt((error**2 * w).mean(list(grid))).mean(samples)
    error = np.asarray(forecast, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    w = _np_weights(error, lat)
    per_sample = (error**2 * w).mean(axis=(-2, -1))
    if error.ndim == 2:
        return float(np.sqrt(per_sample))
    result = np.sqrt(per_sample.mean(axis=-1)) if convention == "weatherbench" else np.sqrt(per_sample).mean(axis=-1)
    return float(result) if np.ndim(result) == 0 else result


def lat_weighted_acc(forecast: Field, truth: Field, climatology: Field, lat=None, *,
                     sample_dims: Sequence[str] = ("time",)) -> Field:
    """Latitude-weighted anomaly correlation coefficient, in [-1, 1] (1: anomalies of the same pattern).

    WeatherBench's ``compute_weighted_acc``: anomalies ``f - c`` and ``t - c`` against ``climatology``
    (from the training period; any shape that broadcasts, e.g. ``(lat, lon)``), each minus its mean over
    all samples and grid points, then ``Σ w f'a' / sqrt(Σ w f'² · Σ w a'²)`` over the samples and the grid.
    """
    if _is_xarray(forecast) or _is_xarray(truth):
        fa, a = forecast - climatology, truth - climatology
        w, grid = _xr_weights(a, lat)
        dims = [*_sample_dims(a, sample_dims), *grid]
        fa, a = fa - fa.mean(dims), a - a.mean(dims)
        return (w * fa * a).sum(dims) / np.sqrt((w * fa**2).sum(dims) * (w * a**2).sum(dims))
    clim = np.asarray(climatology, dtype=np.float64)
    fa = np.asarray(forecast, dtype=np.float64) - clim
    a = np.asarray(truth, dtype=np.float64) - clim
    w = _np_weights(a, lat)
    axes = (-2, -1) if a.ndim == 2 else (-3, -2, -1)
    fa, a = fa - fa.mean(axis=axes, keepdims=True), a - a.mean(axis=axes, keepdims=True)
    acc = (w * fa * a).sum(axis=axes) / np.sqrt((w * fa**2).sum(axis=axes) * (w * a**2).sum(axis=axes))
    return float(acc) if np.ndim(acc) == 0 else acc


# --------------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------------


def climatology(data: Field, by: str | None = None, *, sample_dims: Sequence[str] = ("time",)) -> Field:
    """The mean field of ``data`` (compute it on the training period only).

    ``by=None``: one mean field. xarray data with a datetime ``time`` may also be grouped by
    ``"month"``, ``"week"`` (ISO week, as WeatherBench's weekly climatology) or ``"dayofyear"``.
    Numpy: arrays ``(..., time, lat, lon)``; the mean over the time axis.
    """
    if by is not None and by not in CLIMATOLOGY_GROUPS:
        raise ValueError(f"by must be None or one of {CLIMATOLOGY_GROUPS}, got {by!r}")
    if not _is_xarray(data):
        if by is not None:
            raise ValueError("a grouped climatology (by=...) needs xarray data with a datetime time coordinate")
        data = np.asarray(data, dtype=np.float64)
        if data.ndim < 3:
            raise ValueError(f"expected an array (..., time, lat, lon), got shape {data.shape}")
        return data.mean(axis=-3)
    samples = _sample_dims(data, sample_dims)
    if by is None:
        return data.mean(samples)
    others = [d for d in samples if d != "time"]
    return data.groupby(_time_group(data.time, by)).mean(["time", *others])


def _time_group(time: xr.DataArray, by: str) -> xr.DataArray:
    if not np.issubdtype(time.dtype, np.datetime64):
        raise ValueError(f"a climatology by {by!r} needs a datetime time coordinate, got dtype {time.dtype}")
    if by == "week":
        return xr.DataArray(pd.DatetimeIndex(time.values).isocalendar().week.to_numpy().astype(int),
                            dims=time.dims, coords=time.coords, name="week")
    return getattr(time.dt, by).rename(by)


def climatology_forecast(clim: Field, truth: Field) -> Field:
    """The climatology as a forecast for every time of ``truth`` (same shape as ``truth``)."""
    if not _is_xarray(truth):
        return np.broadcast_to(np.asarray(clim, dtype=np.float64), np.shape(truth)).copy()
    group = next((g for g in CLIMATOLOGY_GROUPS if g in clim.dims), None)
    if group is None:
        return (clim + xr.zeros_like(truth)).transpose(*truth.dims)
    forecast = clim.sel({group: _time_group(truth.time, group)}).drop_vars(group, errors="ignore")
    return forecast.transpose(*truth.dims)


def persistence(data: Field, lead) -> tuple[Field, Field]:
    """The persistence forecast at ``lead``: ``(forecast, truth)``, the field at ``t - lead`` paired with ``t``.

    ``lead``: a number of time steps (int >= 1), or for xarray data with a datetime ``time`` also a
    duration (``"72h"``, ``np.timedelta64``, ``pd.Timedelta``). Numpy: arrays ``(..., time, lat, lon)``.
    Both results carry the valid times of ``truth``.
    """
    if not _is_xarray(data):
        data = np.asarray(data)
        steps = _lead_steps(lead, data.shape[-3] if data.ndim >= 3 else 0)
        return data[..., :-steps, :, :], data[..., steps:, :, :]
    if isinstance(lead, (int, np.integer)) and not isinstance(lead, bool):
        steps = _lead_steps(lead, data.sizes.get("time", 0))
        forecast = data.isel(time=slice(None, -steps)).assign_coords(time=data.time[steps:].values)
        return forecast, data.isel(time=slice(steps, None))
    delta = pd.Timedelta(lead)
    if delta <= pd.Timedelta(0):
        raise ValueError(f"lead must be positive, got {lead!r}")
    forecast = data.assign_coords(time=data.time.values + delta.to_timedelta64())
    forecast, truth = xr.align(forecast, data, join="inner")
    if not forecast.sizes["time"]:
        raise ValueError(f"no time of the data lies {lead} after another one")
    return forecast, truth


def _lead_steps(lead, n_time: int) -> int:
    if not isinstance(lead, (int, np.integer)) or isinstance(lead, bool) or lead < 1:
        raise ValueError(f"lead must be a number of time steps >= 1 for numpy arrays, got {lead!r}")
    if lead >= n_time:
        raise ValueError(f"lead of {lead} steps leaves no pair in {n_time} time steps")
    return int(lead)


__all__ = [
    "CONVENTIONS",
    "climatology",
    "climatology_forecast",
    "lat_weighted_acc",
    "lat_weighted_rmse",
    "lat_weights",
    "persistence",
]
