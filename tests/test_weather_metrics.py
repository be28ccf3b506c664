"""Latitude-weighted RMSE and ACC, climatology and persistence: against values computed by hand."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from racecar_core.weather import (
    climatology,
    climatology_forecast,
    lat_weighted_acc,
    lat_weighted_rmse,
    lat_weights,
    persistence,
)

LAT = np.linspace(-87.1875, 87.1875, 32)  # WeatherBench's 5.625° latitudes
LON = np.arange(64) * 5.625


def field(values: np.ndarray, times=None) -> xr.DataArray:
    times = pd.date_range("2000-01-01", periods=values.shape[0], freq="6h") if times is None else times
    return xr.DataArray(values, dims=("time", "lat", "lon"), coords={"time": times, "lat": LAT[: values.shape[1]],
                                                                      "lon": LON[: values.shape[2]]})


def test_weights_are_cosine_normalised_to_mean_one():
    w = lat_weights(LAT)
    assert w.mean() == pytest.approx(1.0)
    assert w.sum() == pytest.approx(len(LAT))
    assert w[0] / w[16] == pytest.approx(np.cos(np.deg2rad(87.1875)) / np.cos(np.deg2rad(2.8125)))
    assert np.allclose(lat_weights([0.0, 60.0]), [4 / 3, 2 / 3])
    with pytest.raises(ValueError, match="latitudes"):
        lat_weights([0.0, 95.0])
    with pytest.raises(ValueError, match="no weight"):
        lat_weights([90.0, -90.0])


@pytest.mark.parametrize("convention", ["weatherbench", "paper"])
def test_constant_error_gives_that_constant(convention):
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(5, 32, 64))
    assert lat_weighted_rmse(truth + 2.5, truth, LAT, convention=convention) == pytest.approx(2.5)
    assert float(lat_weighted_rmse(field(truth - 2.5), field(truth), convention=convention)) == pytest.approx(2.5)


def test_error_only_at_one_latitude_is_weighted_by_its_cosine():
    truth = np.zeros((1, 2, 4))
    forecast = truth.copy()
    forecast[:, 1, :] = 3.0  # error 3 at 60°, none at 0°: mean(w e²) = (2/3 · 9) / 2 = 3
    assert lat_weighted_rmse(forecast, truth, [0.0, 60.0]) == pytest.approx(np.sqrt(3.0))


def test_the_two_conventions_differ_by_where_the_time_mean_goes():
    truth = np.zeros((2, 2, 4))
    forecast = truth.copy()
    forecast[0] = 1.0
    forecast[1] = 3.0
    lat = [10.0, -10.0]
    assert lat_weighted_rmse(forecast, truth, lat) == pytest.approx(np.sqrt((1 + 9) / 2))
    assert lat_weighted_rmse(forecast, truth, lat, convention="paper") == pytest.approx((1 + 3) / 2)
    da = lat_weighted_rmse(field(forecast, None).assign_coords(lat=lat), field(truth).assign_coords(lat=lat),
                           convention="paper")
    assert float(da) == pytest.approx(2.0)


def test_numpy_and_xarray_agree_and_other_dims_are_kept():
    rng = np.random.default_rng(1)
    f, t = rng.normal(size=(3, 7, 32, 64)), rng.normal(size=(3, 7, 32, 64))
    np_rmse = lat_weighted_rmse(f, t, LAT)
    assert np_rmse.shape == (3,)
    lead = xr.DataArray(f, dims=("lead", "time", "lat", "lon"), coords={"lat": LAT})
    xr_rmse = lat_weighted_rmse(lead, xr.DataArray(t, dims=lead.dims, coords={"lat": LAT}))
    assert xr_rmse.dims == ("lead",)
    assert np.allclose(xr_rmse.values, np_rmse)
    # a Dataset gives one score per variable; 'latitude'/'longitude' names work too
    ds_f = xr.Dataset({"z": lead.isel(lead=0), "t": lead.isel(lead=1)}).rename(lat="latitude", lon="longitude")
    ds_t = xr.Dataset({"z": lead.isel(lead=0) * 0, "t": lead.isel(lead=1) * 0}).rename(lat="latitude", lon="longitude")
    scores = lat_weighted_rmse(ds_f, ds_t)
    assert float(scores["z"]) == pytest.approx(lat_weighted_rmse(f[0], 0 * f[0], LAT))


def test_rmse_of_a_single_field_and_bad_input():
    assert lat_weighted_rmse(np.ones((4, 8)), np.zeros((4, 8)), LAT[:4]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="lat"):
        lat_weighted_rmse(np.ones((2, 4, 8)), np.zeros((2, 4, 8)))
    with pytest.raises(ValueError, match="latitudes"):
        lat_weighted_rmse(np.ones((2, 4, 8)), np.zeros((2, 4, 8)), LAT)
    with pytest.raises(ValueError, match="convention"):
        lat_weighted_rmse(np.ones((2, 4, 8)), np.zeros((2, 4, 8)), LAT[:4], convention="mean")
    with pytest.raises(ValueError, match="lat/lon"):
        lat_weighted_rmse(xr.DataArray(np.ones((2, 3)), dims=("y", "x")), 0)


def test_acc_perfect_opposite_and_scaled_forecasts():
    rng = np.random.default_rng(2)
    truth = rng.normal(size=(6, 32, 64))
    clim = rng.normal(size=(32, 64))
    assert lat_weighted_acc(truth, truth, clim, LAT) == pytest.approx(1.0)
    anomaly = truth - clim
    assert lat_weighted_acc(clim - anomaly, truth, clim, LAT) == pytest.approx(-1.0)
    assert lat_weighted_acc(clim + 0.3 * anomaly + 5.0, truth, clim, LAT) == pytest.approx(1.0)  # ACC ignores scale and bias
    noisy = truth + rng.normal(size=truth.shape)
    acc = lat_weighted_acc(noisy, truth, clim, LAT)
    assert 0.5 < acc < 0.95
    assert float(lat_weighted_acc(field(noisy), field(truth), xr.DataArray(clim, dims=("lat", "lon")))) == pytest.approx(acc)


def test_acc_by_hand_on_a_tiny_grid():
    lat = [0.0, 60.0]
    truth = np.array([[[1.0, -1.0], [2.0, 0.0]]])
    forecast = np.array([[[1.0, 0.0], [1.0, 0.0]]])
    clim = np.zeros((2, 2))
    w = np.array([[4 / 3], [2 / 3]])
    fa, a = forecast - forecast.mean(), truth - truth.mean()
    expected = (w * fa * a).sum() / np.sqrt((w * fa**2).sum() * (w * a**2).sum())
    assert lat_weighted_acc(forecast, truth, clim, lat) == pytest.approx(expected)


def test_climatology_is_the_training_mean_and_its_forecast_broadcasts():
    rng = np.random.default_rng(3)
    data = rng.normal(size=(8, 4, 8))
    clim = climatology(data)
    assert np.allclose(clim, data.mean(axis=0))
    assert climatology_forecast(clim, data).shape == data.shape
    da = field(data)
    assert np.allclose(climatology(da).values, clim)
    assert climatology_forecast(climatology(da), da).dims == da.dims
    # climatology forecast RMSE is the lat-weighted standard deviation around the mean
    expected = np.sqrt((lat_weights(LAT[:4])[:, None] * (data - clim) ** 2).mean())
    assert lat_weighted_rmse(climatology_forecast(clim, data), data, LAT[:4]) == pytest.approx(expected)


def test_monthly_climatology_forecast_picks_the_month_of_each_time():
    times = pd.to_datetime(["2000-01-10", "2000-01-20", "2000-02-10", "2001-01-15"])
    data = field(np.stack([np.full((2, 4), v) for v in (1.0, 3.0, 10.0, 5.0)]), times)
    clim = climatology(data, by="month")
    assert list(clim.month.values) == [1, 2]
    assert np.allclose(clim.sel(month=1), 3.0) and np.allclose(clim.sel(month=2), 10.0)
    forecast = climatology_forecast(clim, data)
    assert np.allclose(forecast.isel(lat=0, lon=0).values, [3.0, 3.0, 10.0, 3.0])
    weekly = climatology(data, by="week")
    assert "week" in weekly.dims
    with pytest.raises(ValueError, match="by must be"):
        climatology(data, by="season")
    with pytest.raises(ValueError, match="xarray"):
        climatology(data.values, by="month")


def test_persistence_pairs_each_time_with_the_field_lead_steps_earlier():
    data = np.arange(5.0)[:, None, None] * np.ones((5, 2, 3))
    forecast, truth = persistence(data, 2)
    assert np.array_equal(forecast[:, 0, 0], [0, 1, 2]) and np.array_equal(truth[:, 0, 0], [2, 3, 4])
    assert lat_weighted_rmse(forecast, truth, [0.0, 10.0]) == pytest.approx(2.0)
    da = field(data)
    f_steps, t_steps = persistence(da, 2)
    f_hours, t_hours = persistence(da, "12h")
    assert np.array_equal(f_steps.values, f_hours.values) and np.array_equal(t_steps.time, t_hours.time)
    assert np.array_equal(f_steps.time, t_steps.time)
    assert float(lat_weighted_rmse(f_hours, t_hours)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="lead"):
        persistence(data, 0)
    with pytest.raises(ValueError, match="no pair"):
        persistence(data, 5)
    with pytest.raises(ValueError, match="no time"):
        persistence(da, "30D")
