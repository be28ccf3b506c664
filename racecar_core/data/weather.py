"""Weather data for forecasting: WeatherBench folders and ERA5 netCDF files, normalisation, forecast pairs.

Every reader returns an :class:`xarray.Dataset` in one layout: variables named ``z500`` (geopotential at
500 hPa, m²/s²), ``t850`` (temperature at 850 hPa, K) and ``t2m`` (2 m temperature, K), on dimensions
``(time, lat, lon)`` (plus ``member`` where the file has ensemble members), latitudes ascending in
degrees north, longitudes in degrees east. The simulated atmosphere
(:mod:`racecar_core.data.shallow_water`) has the same layout with its own variables ``z`` and ``t``.

Nothing is downloaded here. WeatherBench (Rasp et al. 2020): https://github.com/pangeo-data/WeatherBench,
files on mediaTUM (https://mediatum.ub.tum.de/1524895); ERA5: the Copernicus Climate Data Store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import Tensor

from ..batches import epoch_generator

# name -> (WeatherBench folder of the single level, folder with all levels, netCDF variable, pressure level)
WEATHERBENCH = {
    "z500": ("geopotential_500", "geopotential", "z", 500),
    "t850": ("temperature_850", "temperature", "t", 850),
    "t2m": ("2m_temperature", None, "t2m", None),
}
VARIABLES = tuple(WEATHERBENCH)
UNITS = {"z500": "m**2 s**-2", "t850": "K", "t2m": "K"}
WEATHERBENCH_URL = "https://github.com/pangeo-data/WeatherBench"
MEDIATUM_URL = "https://mediatum.ub.tum.de/1524895"

_RENAME = {  # names used by ERA5 / cfgrib / CDS files -> ours
    "latitude": "lat", "longitude": "lon",
    "isobaricInhPa": "level", "pressure_level": "level", "plev": "level",
    "number": "member", "realization": "member",
}


def _where_to_get() -> str:
    return (f"WeatherBench's 5.625° files are at {MEDIATUM_URL} (see {WEATHERBENCH_URL}); "
            f"ERA5 at the Copernicus Climate Data Store (https://cds.climate.copernicus.eu)")


def _check_variables(variables: Sequence[str]) -> list[str]:
    variables = list(variables)
    unknown = [v for v in variables if v not in WEATHERBENCH]
    if unknown or not variables:
        raise ValueError(f"variables must be a non-empty subset of {VARIABLES}, got {variables}")
    return variables


def standardise(ds: xr.Dataset) -> xr.Dataset:
    """Rename ERA5/cfgrib dimension names to ours, sort latitudes ascending, longitudes to [0, 360)."""
    if "valid_time" in ds.dims and "time" not in ds.dims:  # ERA5 files of the new CDS name the time axis so
        ds = ds.drop_vars("time", errors="ignore").rename(valid_time="time")
    ds = ds.rename({k: v for k, v in _RENAME.items() if k in ds.dims or k in ds.coords})
    if "time" not in ds.dims and "time" in ds.coords and ds["time"].size == 1:
        ds = ds.expand_dims("time")
    if "lat" not in ds.dims or "lon" not in ds.dims:
        raise ValueError(f"expected latitude and longitude dimensions, got {tuple(ds.dims)}")
    ds = ds.assign_coords(lon=np.mod(ds.lon.values, 360.0))
    return ds.sortby("lat").sortby("lon")


def _select_level(da: xr.DataArray, level: int | None, source: str) -> xr.DataArray:
    """``da`` at pressure ``level`` (hPa) when it has a level coordinate; an error if that level is not there."""
    if level is None or "level" not in da.coords:
        return da
    levels = np.atleast_1d(da.level.values)
    if level not in levels:
        raise ValueError(f"{source} has no {level} hPa level (levels: {levels.tolist()})")
    return da.sel(level=level) if "level" in da.dims else da


def _subsample(da: xr.DataArray, hours: int | None) -> xr.DataArray:
    if not hours:
        return da
    time = pd.DatetimeIndex(da.time.values)
    keep = ((time - time.normalize()) / pd.Timedelta(hours=1)) % hours == 0
    return da.isel(time=np.flatnonzero(keep))


# --------------------------------------------------------------------------------------------------
# WeatherBench
# --------------------------------------------------------------------------------------------------


def _weatherbench_files(root: Path, name: str) -> list[Path]:
    single, multi, _, _ = WEATHERBENCH[name]
    for folder in (single, multi):
        if folder and sorted((root / folder).glob("*.nc")):
            return sorted((root / folder).glob("*.nc"))
    expected = f"{root / single}/*.nc" + (f" (or {root / multi}/*.nc with all levels)" if multi else "")
    raise FileNotFoundError(
        f"no WeatherBench files for {name} in {root}: expected {expected}, e.g. "
        f"{single}/{single.replace('_500', '_500hPa').replace('_850', '_850hPa')}_1979_5.625deg.nc. "
        + _where_to_get()
    )


def open_weatherbench(root: str | os.PathLike, variables: Sequence[str] = ("z500", "t850"), *,
                      years: slice | None = None, hours: int | None = 6) -> xr.Dataset:
    """Read a WeatherBench folder (one folder per variable, one netCDF file per year) into memory.

    ``root``: e.g. ``.../5.625deg`` with ``geopotential_500/``, ``temperature_850/``, ``2m_temperature/``
    (the all-level folders ``geopotential/`` and ``temperature/`` also work). ``years``: e.g.
    ``slice("2016", "2018")`` reads only those years; ``hours``: keep every ``hours``-th hour of the day
    (WeatherBench files are hourly; 6 gives 00, 06, 12, 18 UTC), ``None`` keeps all.
    """
    root = Path(root)
    variables = _check_variables(variables)
    if not root.is_dir():
        raise FileNotFoundError(f"WeatherBench folder {root} does not exist. Expected {root}/geopotential_500/*.nc, "
                                f"{root}/temperature_850/*.nc, {root}/2m_temperature/*.nc. " + _where_to_get())
    arrays = {}
    for name in variables:
        files = _weatherbench_files(root, name)
        _, _, var, level = WEATHERBENCH[name]
        parts = []
        for path in files:
            with xr.open_dataset(path) as ds:
                ds = standardise(ds)
                if var not in ds:
                    raise ValueError(f"{path} has no variable {var!r} (has {list(ds.data_vars)}); is it a WeatherBench file?")
                da = _select_level(ds[var], level, str(path))
                da = da.sel(time=years) if years is not None else da
                if da.sizes["time"]:
                    parts.append(_subsample(da, hours).drop_vars("level", errors="ignore").load())
        if not parts:
            raise ValueError(f"no times of {years} in {files[0].parent}")
        arrays[name] = xr.concat(parts, "time").sortby("time")
    return _merge(arrays)


def _merge(arrays: dict[str, xr.DataArray]) -> xr.Dataset:
    try:
        ds = xr.merge([a.rename(n) for n, a in arrays.items()], join="exact", combine_attrs="drop")
    except ValueError as e:
        raise ValueError(f"the variables {list(arrays)} are not on the same times and grid: {e}") from None
    for name in arrays:
        ds[name].attrs = {"units": UNITS[name]}
    return ds


# --------------------------------------------------------------------------------------------------
# ERA5 netCDF
# --------------------------------------------------------------------------------------------------

_ERA5_NAMES = {"z500": ("z", 500), "t850": ("t", 850), "t2m": ("t2m", None)}


def open_era5(paths: str | os.PathLike | Sequence[str | os.PathLike], variables: Sequence[str] = ("z500", "t850"), *,
              hours: int | None = None) -> xr.Dataset:
    """Read ERA5 netCDF files: ``z`` and ``t`` on pressure levels (a level dimension named ``level``,
    ``pressure_level`` or ``isobaricInhPa``), ``t2m`` on the surface; ensemble members (``number``) are kept
    as ``member``. ``paths``: one file, several, or a folder (all ``*.nc`` in it)."""
    variables = _check_variables(variables)
    files = _era5_files(paths)
    found: dict[str, list[xr.DataArray]] = {v: [] for v in variables}
    for path in files:
        with xr.open_dataset(path) as ds:
            ds = standardise(ds)
            for name in variables:
                var, level = _ERA5_NAMES[name]
                if var in ds:
                    da = _select_level(ds[var], level, str(path))
                    drop = [c for c in da.coords if c not in da.dims and c not in ("time",)]
                    found[name].append(_subsample(da, hours).drop_vars(drop).load())
    missing = [v for v, parts in found.items() if not parts]
    if missing:
        raise ValueError(f"no {', '.join(missing)} in {[str(f) for f in files]}: expected ERA5 variables "
                         f"{', '.join(_ERA5_NAMES[m][0] for m in missing)} (z and t on pressure levels 500/850 hPa, "
                         f"t2m at the surface). " + _where_to_get())
    arrays = {n: xr.concat(p, "time").sortby("time") if len(p) > 1 else p[0] for n, p in found.items()}
    return _merge(arrays)


def _era5_files(paths) -> list[Path]:
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            files += sorted(item.glob("*.nc"))
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"ERA5 file or folder {item} does not exist. " + _where_to_get())
    if not files:
        raise FileNotFoundError(f"no *.nc files in {items}. " + _where_to_get())
    return files


# --------------------------------------------------------------------------------------------------
# Normalisation and forecast pairs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Normalizer:
    """Per-variable mean and standard deviation (over every sample and grid point of the training data)."""

    variables: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, train: xr.Dataset, variables: Sequence[str]) -> Normalizer:
        """Statistics of ``train`` only (the training period or members): never of validation or test data."""
        missing = [v for v in variables if v not in train]
        if missing:
            raise ValueError(f"variables {missing} not in the data (has {list(train.data_vars)})")
        mean = tuple(float(train[v].mean()) for v in variables)
        std = tuple(float(train[v].std()) for v in variables)
        if not all(np.isfinite(mean + std)) or min(std) <= 0:
            raise ValueError(f"cannot normalise {list(variables)}: mean {mean}, std {std} (constant or NaN data?)")
        return cls(tuple(variables), mean, std)

    def normalise(self, ds: xr.Dataset) -> xr.Dataset:
        return xr.Dataset({v: (ds[v] - m) / s for v, m, s in zip(self.variables, self.mean, self.std)})

    def denormalise(self, values: np.ndarray | Tensor, channel_axis: int = -3) -> np.ndarray:
        """Physical units from normalised values with the variables along ``channel_axis``."""
        values = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
        shape = [1] * values.ndim
        shape[channel_axis] = len(self.variables)
        return values * np.reshape(self.std, shape) + np.reshape(self.mean, shape)


def stack_fields(ds: xr.Dataset, variables: Sequence[str]) -> xr.DataArray:
    """The variables as one array ``(member, time, channel, lat, lon)`` (``member`` of size 1 if absent)."""
    da = xr.concat([ds[v] for v in variables], dim=pd.Index(list(variables), name="channel"))
    if "member" not in da.dims:
        da = da.expand_dims("member")
    return da.transpose("member", "time", "channel", "lat", "lon")


class ForecastPairs:
    """Inputs at times ``t + offset`` (``input_offsets``, in hours) and targets at ``t + lead`` (hours).

    ``fields``: a normalised array from :func:`stack_fields`. A pair exists where every time it needs
    is in the data (gaps, e.g. between WeatherBench years or members, are never bridged). Inputs are
    ``[N, channels · len(input_offsets), lat, lon]`` (the offsets' fields stacked, first offset first),
    targets ``[N, channels, lat, lon]``; ``valid_time`` and ``member`` say which target each row is.
    """

    def __init__(self, fields: xr.DataArray, lead_hours: int, input_offsets: Sequence[int] = (0,)):
        if lead_hours <= 0:
            raise ValueError(f"lead_hours must be positive, got {lead_hours}")
        if not input_offsets or max(input_offsets) > 0:
            raise ValueError(f"input_offsets are hours <= 0 (e.g. (0, -6, -12)), got {input_offsets}")
        self.lead_hours, self.input_offsets = int(lead_hours), tuple(int(o) for o in input_offsets)
        self.variables = list(fields.channel.values)
        self.lat, self.lon = fields.lat.values, fields.lon.values
        self.data = torch.from_numpy(np.ascontiguousarray(fields.values, dtype=np.float32))  # (M, T, C, H, W)
        time = pd.DatetimeIndex(fields.time.values)
        at = lambda hours: _index_of(time, time + pd.Timedelta(hours=hours))  # noqa: E731
        inputs = np.stack([at(o) for o in self.input_offsets], axis=1)  # (T, offsets)
        target = at(self.lead_hours)
        ok = (inputs >= 0).all(axis=1) & (target >= 0)
        t0 = np.flatnonzero(ok)
        members = np.arange(self.data.shape[0])
        self.member = np.repeat(members, len(t0))
        self._inputs = torch.from_numpy(np.tile(inputs[t0], (len(members), 1)))
        self._target = torch.from_numpy(np.tile(target[t0], len(members)))
        self._member = torch.from_numpy(self.member)
        self.valid_time = np.tile(time.values[target[t0]], len(members))
        self.init_time = np.tile(time.values[t0], len(members))
        if not len(self):
            raise ValueError(f"no forecast pairs at a lead of {lead_hours} h with inputs at {self.input_offsets} h "
                             f"in {len(time)} times ({time[0] if len(time) else ''} .. {time[-1] if len(time) else ''})")

    def __len__(self) -> int:
        return len(self._target)

    @property
    def channels(self) -> tuple[int, int]:
        """(input channels, output channels)."""
        c = self.data.shape[2]
        return c * len(self.input_offsets), c

    def x(self, rows: Tensor | slice | None = None) -> Tensor:
        rows = _rows(rows, len(self))
        m, t = self._member[rows], self._inputs[rows]  # (n,), (n, offsets)
        x = self.data[m[:, None], t]  # (n, offsets, C, H, W)
        return x.reshape(x.shape[0], -1, *x.shape[-2:])

    def y(self, rows: Tensor | slice | None = None) -> Tensor:
        rows = _rows(rows, len(self))
        return self.data[self._member[rows], self._target[rows]]

    def tensors(self) -> tuple[Tensor, Tensor]:
        """All pairs ``(x, y)`` (for small data sets; :meth:`batches` reads batches without copying all)."""
        return self.x(), self.y()

    def persistence(self) -> Tensor:
        """The persistence forecast of every pair: the input fields at offset 0, ``[N, channels, lat, lon]``."""
        k = self.input_offsets.index(0) if 0 in self.input_offsets else None
        if k is None:
            raise ValueError("persistence needs the input offset 0")
        return self.data[self._member, self._inputs[:, k]]

    def batches(self, batch_size: int, *, seed: int = 0, shuffle: bool = True) -> PairBatches:
        return PairBatches(self, batch_size, seed=seed, shuffle=shuffle)


def _index_of(time: pd.DatetimeIndex, wanted: pd.DatetimeIndex) -> np.ndarray:
    """Index of each ``wanted`` time in ``time`` (sorted), −1 where it is absent."""
    if not len(time):
        return np.full(len(wanted), -1)
    pos = np.clip(time.searchsorted(wanted), 0, len(time) - 1)
    return np.where(time.values[pos] == wanted.values, pos, -1)


def _rows(rows, n: int) -> Tensor:
    if rows is None:
        return torch.arange(n)
    if isinstance(rows, slice):
        return torch.arange(n)[rows]
    return torch.as_tensor(rows)


class PairBatches:
    """Batches of :class:`ForecastPairs` for :func:`racecar_core.train`: a new order each epoch, drawn from
    ``(seed, epoch)`` alone, so an interrupted run resumes with the same batches."""

    def __init__(self, pairs: ForecastPairs, batch_size: int, *, seed: int = 0, shuffle: bool = True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.pairs, self.batch_size, self.seed, self.shuffle = pairs, min(batch_size, len(pairs)), seed, shuffle

    def __len__(self) -> int:
        return len(self.pairs) // self.batch_size  # full batches only

    def batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.pairs)
        order = torch.randperm(n, generator=epoch_generator(self.seed, epoch)) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            rows = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.pairs.x(rows), self.pairs.y(rows)


__all__ = [
    "ForecastPairs",
    "Normalizer",
    "PairBatches",
    "UNITS",
    "VARIABLES",
    "WEATHERBENCH",
    "open_era5",
    "open_weatherbench",
    "stack_fields",
    "standardise",
]
