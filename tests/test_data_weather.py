"""WeatherBench and ERA5 readers (on files the tests write, and the real ERA5 sample when present),
normalisation and forecast pairs."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import racecar_core.runs
from racecar_core.data.weather import (
    ForecastPairs,
    Normalizer,
    open_era5,
    open_weatherbench,
    stack_fields,
)

WB_LAT = np.linspace(-87.1875, 87.1875, 4)
WB_LON = np.arange(8) * 45.0
ERA5_SAMPLE = Path(racecar_core.runs.REPO_ROOT).parent / "shared" / "data" / "era5-sample" / "era5-levels-members.nc"


def hourly(year: int, hours: int = 48) -> pd.DatetimeIndex:
    return pd.date_range(f"{year}-01-01", periods=hours, freq="1h")


def coded(times: pd.DatetimeIndex, base: float) -> np.ndarray:
    """Values that say their own time: base + hours since 2000, constant over the grid."""
    hours = ((times - pd.Timestamp("2000-01-01")) / pd.Timedelta(hours=1)).to_numpy()
    return (base + hours)[:, None, None] * np.ones((1, len(WB_LAT), len(WB_LON)))


def write_weatherbench(root: Path, years=(2016, 2017), all_levels: bool = False) -> Path:
    """Files in WeatherBench's 5.625° layout (hourly, one file per year and variable)."""
    for year in years:
        times = hourly(year)
        coords = {"time": times, "lat": WB_LAT, "lon": WB_LON}
        if all_levels:
            for folder, var, base in (("geopotential", "z", 50000.0), ("temperature", "t", 200.0)):
                values = np.stack([coded(times, base), coded(times, base + 1000)], axis=1)  # levels 500, 850
                ds = xr.Dataset({var: (("time", "level", "lat", "lon"), values)}, coords={**coords, "level": [500, 850]})
                (root / folder).mkdir(parents=True, exist_ok=True)
                ds.to_netcdf(root / folder / f"{folder}_{year}_5.625deg.nc")
        else:
            for folder, file, var, base, level in (
                ("geopotential_500", "geopotential_500hPa", "z", 50000.0, 500),
                ("temperature_850", "temperature_850hPa", "t", 200.0, 850),
            ):
                ds = xr.Dataset({var: (("time", "lat", "lon"), coded(times, base))}, coords={**coords, "level": level})
                (root / folder).mkdir(parents=True, exist_ok=True)
                ds.to_netcdf(root / folder / f"{file}_{year}_5.625deg.nc")
        t2m = xr.Dataset({"t2m": (("time", "lat", "lon"), coded(times, 100.0))}, coords=coords)
        (root / "2m_temperature").mkdir(parents=True, exist_ok=True)
        t2m.to_netcdf(root / "2m_temperature" / f"2m_temperature_{year}_5.625deg.nc")
    return root


def write_era5(folder: Path) -> Path:
    """An ERA5 download from the new CDS: valid_time, pressure_level, latitude descending; t2m in another file."""
    folder.mkdir(parents=True, exist_ok=True)
    times = pd.date_range("2020-01-01", periods=8, freq="6h")
    lat, lon = np.array([60.0, 0.0, -60.0]), np.array([-90.0, 0.0, 90.0, 180.0])
    shape = (len(times), 2, len(lat), len(lon))
    z = np.broadcast_to(np.array([5.5e4, 1.4e4])[None, :, None, None], shape) + np.arange(len(times))[:, None, None, None]
    t = np.broadcast_to(np.array([250.0, 280.0])[None, :, None, None], shape) + lat[None, None, :, None] / 100
    coords = {"valid_time": times, "pressure_level": [500.0, 850.0], "latitude": lat, "longitude": lon}
    dims = ("valid_time", "pressure_level", "latitude", "longitude")
    xr.Dataset({"z": (dims, z), "t": (dims, t)}, coords=coords).to_netcdf(folder / "levels.nc")
    surface = {k: v for k, v in coords.items() if k != "pressure_level"}
    xr.Dataset({"t2m": (("valid_time", "latitude", "longitude"), np.full((len(times), 3, 4), 290.0))},
               coords=surface).to_netcdf(folder / "surface.nc")
    return folder


# --------------------------------------------------------------------------------------------------
# WeatherBench
# --------------------------------------------------------------------------------------------------


def test_weatherbench_folder_is_read_six_hourly_with_our_names(tmp_path):
    ds = open_weatherbench(write_weatherbench(tmp_path), ("z500", "t850", "t2m"))
    assert list(ds.data_vars) == ["z500", "t850", "t2m"]
    assert ds.z500.dims == ("time", "lat", "lon") and ds.z500.attrs["units"] == "m**2 s**-2"
    assert ds.sizes["time"] == 2 * 8  # 48 hourly times per year -> 8 six-hourly, two years
    assert set(pd.DatetimeIndex(ds.time.values).hour) == {0, 6, 12, 18}
    hours = ((pd.DatetimeIndex(ds.time.values) - pd.Timestamp("2000-01-01")) / pd.Timedelta(hours=1)).to_numpy()
    assert np.allclose(ds.z500.isel(lat=0, lon=0), 50000 + hours)
    assert np.allclose(ds.t2m.isel(lat=2, lon=5), 100 + hours)
    assert np.all(np.diff(ds.lat) > 0)


def test_weatherbench_years_and_hours(tmp_path):
    write_weatherbench(tmp_path)
    ds = open_weatherbench(tmp_path, ("z500",), years=slice("2017", "2017"), hours=None)
    assert ds.sizes["time"] == 48 and pd.DatetimeIndex(ds.time.values).year.unique().tolist() == [2017]


def test_weatherbench_all_level_folders_select_500_and_850(tmp_path):
    ds = open_weatherbench(write_weatherbench(tmp_path, all_levels=True), ("z500", "t850"))
    hours = ((pd.DatetimeIndex(ds.time.values) - pd.Timestamp("2000-01-01")) / pd.Timedelta(hours=1)).to_numpy()
    assert np.allclose(ds.z500.isel(lat=0, lon=0), 50000 + hours)  # level 500 of geopotential
    assert np.allclose(ds.t850.isel(lat=0, lon=0), 1200 + hours)  # level 850 of temperature
    assert "level" not in ds.coords


def test_weatherbench_single_level_files_with_a_level_dimension_or_the_wrong_level(tmp_path):
    folder = tmp_path / "geopotential_500"
    folder.mkdir()
    times = hourly(2016)
    values = coded(times, 50000.0)[:, None]
    xr.Dataset({"z": (("time", "level", "lat", "lon"), values)},
               coords={"time": times, "level": [500], "lat": WB_LAT, "lon": WB_LON}).to_netcdf(folder / "a.nc")
    ds = open_weatherbench(tmp_path, ("z500",))
    assert ds.z500.dims == ("time", "lat", "lon")
    xr.Dataset({"z": (("time", "lat", "lon"), values[:, 0])},
               coords={"time": times, "level": 850, "lat": WB_LAT, "lon": WB_LON}).to_netcdf(folder / "a.nc")
    with pytest.raises(ValueError, match="no 500 hPa level"):
        open_weatherbench(tmp_path, ("z500",))


def test_missing_weatherbench_folder_says_what_and_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"geopotential_500/\*\.nc.*mediatum"):
        open_weatherbench(tmp_path / "nowhere")
    (tmp_path / "temperature_850").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no WeatherBench files for z500.*geopotential_500hPa_1979_5\.625deg\.nc"):
        open_weatherbench(tmp_path)
    with pytest.raises(ValueError, match="subset"):
        open_weatherbench(tmp_path, ("z850",))


def test_weatherbench_file_with_the_wrong_variable_is_named(tmp_path):
    folder = tmp_path / "geopotential_500"
    folder.mkdir()
    bad = folder / "geopotential_500hPa_2016_5.625deg.nc"
    xr.Dataset({"height": (("time", "lat", "lon"), coded(hourly(2016), 0.0))},
               coords={"time": hourly(2016), "lat": WB_LAT, "lon": WB_LON}).to_netcdf(bad)
    with pytest.raises(ValueError, match=f"{bad.name}.*no variable 'z'"):
        open_weatherbench(tmp_path, ("z500",))


# --------------------------------------------------------------------------------------------------
# ERA5
# --------------------------------------------------------------------------------------------------


def test_era5_cds_files_levels_and_surface(tmp_path):
    ds = open_era5(write_era5(tmp_path / "era5"), ("z500", "t850", "t2m"))
    assert ds.z500.dims == ("time", "lat", "lon")
    assert np.allclose(ds.z500.isel(lat=0, lon=0), 5.5e4 + np.arange(8))
    assert np.allclose(ds.t850.values, 280.0 + ds.lat.values[None, :, None] / 100)  # level 850, lat sorted
    assert list(ds.lat.values) == [-60.0, 0.0, 60.0] and list(ds.lon.values) == [0.0, 90.0, 180.0, 270.0]
    assert float(ds.t2m.mean()) == 290.0


def test_era5_errors_name_the_files_and_variables(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_era5(tmp_path / "missing.nc")
    folder = write_era5(tmp_path / "era5")
    with pytest.raises(ValueError, match="no t2m.*surface"):
        open_era5(folder / "levels.nc", ("z500", "t2m"))
    levels = xr.open_dataset(folder / "levels.nc").load()
    levels.sel(pressure_level=[850.0]).to_netcdf(tmp_path / "only850.nc")
    with pytest.raises(ValueError, match="no 500 hPa level"):
        open_era5(tmp_path / "only850.nc", ("z500",))


@pytest.mark.skipif(not ERA5_SAMPLE.exists(), reason=f"the real ERA5 sample is not at {ERA5_SAMPLE} (../shared absent)")
def test_real_era5_sample_members_levels_and_pairs():
    ds = open_era5(ERA5_SAMPLE, ("z500", "t850"))
    assert dict(ds.sizes) == {"member": 10, "time": 4, "lat": 61, "lon": 120}
    assert ds.lat.values[0] == -90 and ds.lat.values[-1] == 90
    assert 4.5e4 < float(ds.z500.mean()) < 6.0e4  # Z500 of January: about 5,000-5,900 m times g
    assert 240 < float(ds.t850.mean()) < 290
    raw = xr.open_dataset(ERA5_SAMPLE)
    assert np.allclose(ds.z500.sel(member=3).isel(time=2).values,
                       raw.z.sel(number=3, isobaricInhPa=500).isel(time=2).values[::-1])  # lat flipped to ascending
    norm = Normalizer.fit(ds.isel(member=slice(0, 8)), ["z500", "t850"])
    pairs = ForecastPairs(stack_fields(norm.normalise(ds), ["z500", "t850"]), lead_hours=12)
    assert len(pairs) == 10 * 3 and pairs.channels == (2, 2)
    x, y = pairs.tensors()
    assert x.shape == y.shape == (30, 2, 61, 120)
    assert torch.equal(x[1], y[0])  # member 0: the target of 00->12 UTC is the input of 12->00 UTC


# --------------------------------------------------------------------------------------------------
# Normalisation and pairs
# --------------------------------------------------------------------------------------------------


def series(n_time: int = 10, members: int | None = None, step_hours: int = 6) -> xr.Dataset:
    times = pd.date_range("2000-01-01", periods=n_time, freq=f"{step_hours}h")
    z = np.arange(n_time, dtype=float)[:, None, None] * np.ones((1, 2, 3))
    ds = xr.Dataset({"z": (("time", "lat", "lon"), z), "t": (("time", "lat", "lon"), 100 + z)},
                    coords={"time": times, "lat": [-45.0, 45.0], "lon": [0.0, 120.0, 240.0]})
    if members:
        ds = xr.concat([ds + 1000 * m for m in range(members)], dim="member")
    return ds


def test_normalizer_uses_the_training_data_only_and_inverts():
    ds = series(10)
    train = ds.isel(time=slice(0, 6))
    norm = Normalizer.fit(train, ["z", "t"])
    assert norm.mean == pytest.approx((2.5, 102.5)) and norm.std[0] == pytest.approx(float(train.z.std()))
    normalised = norm.normalise(train)
    assert float(normalised.z.mean()) == pytest.approx(0) and float(normalised.z.std()) == pytest.approx(1)
    fields = stack_fields(norm.normalise(ds), ["z", "t"])
    assert np.allclose(norm.denormalise(fields.values, channel_axis=2), stack_fields(ds, ["z", "t"]).values)
    with pytest.raises(ValueError, match="not in the data"):
        Normalizer.fit(train, ["z500"])
    with pytest.raises(ValueError, match="cannot normalise"):
        Normalizer.fit(train * 0, ["z"])


def test_pairs_take_the_target_lead_hours_later():
    pairs = ForecastPairs(stack_fields(series(10), ["z", "t"]), lead_hours=12)
    x, y = pairs.tensors()
    assert len(pairs) == 8 and x.shape == (8, 2, 2, 3)
    assert torch.equal(y[:, 0, 0, 0], x[:, 0, 0, 0] + 2)  # 12 h = two 6-hourly steps
    assert torch.equal(pairs.persistence(), x)
    assert (pairs.valid_time - pairs.init_time == np.timedelta64(12, "h")).all()


def test_pairs_with_history_stack_earlier_inputs_first_offset_first():
    pairs = ForecastPairs(stack_fields(series(10), ["z", "t"]), lead_hours=6, input_offsets=(0, -6, -12))
    x, y = pairs.tensors()
    assert pairs.channels == (6, 2) and len(pairs) == 7
    assert torch.equal(x[0, :, 0, 0], torch.tensor([2.0, 102, 1, 101, 0, 100]))
    assert torch.equal(y[0, :, 0, 0], torch.tensor([3.0, 103]))
    assert torch.equal(pairs.persistence(), x[:, :2])


def test_pairs_never_bridge_gaps_or_members():
    ds = series(10, members=2).drop_isel(time=[4])  # a missing time
    pairs = ForecastPairs(stack_fields(ds, ["z"]), lead_hours=6)
    x, y = pairs.tensors()
    assert len(pairs) == 2 * 7  # 9 times -> 8 consecutive pairs minus the two across the gap, per member
    assert torch.equal(y - x, torch.ones_like(x))
    assert set(pairs.member.tolist()) == {0, 1}
    assert torch.equal(x[pairs.member == 1] // 1000, torch.ones_like(x[pairs.member == 1]))


def test_pair_errors():
    fields = stack_fields(series(3), ["z"])
    with pytest.raises(ValueError, match="positive"):
        ForecastPairs(fields, 0)
    with pytest.raises(ValueError, match="<= 0"):
        ForecastPairs(fields, 6, input_offsets=(6,))
    with pytest.raises(ValueError, match="no forecast pairs"):
        ForecastPairs(fields, 24)


def test_pair_batches_are_a_permutation_fixed_by_seed_and_epoch():
    pairs = ForecastPairs(stack_fields(series(20), ["z"]), lead_hours=6)
    batches = pairs.batches(5, seed=3)
    assert len(batches) == 3  # 19 pairs: three full batches
    first = [y[:, 0, 0, 0] for _, y in batches.batches(0)]
    again = [y[:, 0, 0, 0] for _, y in pairs.batches(5, seed=3).batches(0)]
    other = [y[:, 0, 0, 0] for _, y in batches.batches(1)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    values = torch.cat(first)
    assert len(values.unique()) == 15  # no pair twice in an epoch
    for x, y in batches.batches(0):
        assert torch.equal(y, x + 1)
