"""The periodic forecast ResNet: shapes, symmetry, reverse pass, training with the one loop, scores."""

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from torch import nn

import racecar_core as rc
from racecar_core.data.weather import ForecastPairs, Normalizer, stack_fields
from racecar_core.forecast import evaluate_forecaster, forecast_resnet, predict, train_forecaster
from racecar_core.weather import lat_weighted_acc, lat_weighted_rmse

LAT = np.linspace(-78.75, 78.75, 8)
LON = np.arange(16) * 22.5


@pytest.fixture(autouse=True)
def _seed(one_torch_thread):
    torch.manual_seed(0)
    yield


def small_model(dropout: float = 0.0, in_channels: int = 2) -> nn.Sequential:
    return forecast_resnet(in_channels, 2, width=8, blocks=2, dropout=dropout)


def waves(n_time: int = 40, members: int = 2) -> xr.Dataset:
    """Two variables: waves travelling east, 6-hourly, a few members."""
    t = np.arange(n_time)[:, None, None] * 0.3
    lat, lon = np.deg2rad(LAT)[None, :, None], np.deg2rad(LON)[None, None, :]
    data = {}
    for m in range(members):
        z = 5e4 + 300 * np.cos(lat) * np.sin(2 * lon - t + m)
        temp = 270 + 5 * np.cos(lat) ** 2 * np.cos(3 * lon - 0.5 * t + m)
        data[m] = xr.Dataset({"z": (("time", "lat", "lon"), z), "t": (("time", "lat", "lon"), temp)},
                             coords={"time": pd.date_range("2000-01-01", periods=n_time, freq="6h"), "lat": LAT, "lon": LON})
    return xr.concat(list(data.values()), dim="member")


def test_shapes_children_and_grid_size_kept():
    model = forecast_resnet(6, 2, width=8, blocks=3, dropout=0.1)
    assert [name for name, _ in model.named_children()] == ["stem", "blocks", "head"]
    assert len(model.blocks) == 3
    x = torch.randn(4, 6, 8, 16)
    assert model(x).shape == (4, 2, 8, 16)
    convs = [m for m in model.modules() if isinstance(m, rc.PeriodicConv2d)]
    assert len(convs) == 1 + 2 * 3 + 1 and convs[0].kernel_size == (7, 7)
    with pytest.raises(ValueError, match="odd"):
        forecast_resnet(2, 2, kernel=4)
    with pytest.raises(ValueError, match="dropout"):
        forecast_resnet(2, 2, dropout=1.0)


def test_model_commutes_with_a_roll_in_longitude():
    model = small_model().eval()
    x = torch.randn(2, 2, 8, 16)
    assert torch.allclose(model(torch.roll(x, 5, dims=-1)), torch.roll(model(x), 5, dims=-1), atol=1e-5)


def test_reverse_pass_covers_every_convolution():
    model = small_model(dropout=0.1)
    x = torch.randn(4, 2, 8, 16)
    pairs = rc.reverse_pass(model, x)
    convs = [m for m in model.modules() if isinstance(m, rc.PeriodicConv2d)]
    assert len(pairs) == len(convs)
    assert all(d.shape == d_rec.shape and d.shape[1] == c.in_channels for (d, d_rec), c in zip(pairs, convs))
    rc.rr_loss(model, x, reduction="mean").backward()
    assert all(c.weight.grad is not None and c.weight.grad.abs().sum() > 0 for c in convs)


def test_training_with_the_loop_lowers_the_loss_for_std_and_rr(tmp_path):
    ds = waves()
    norm = Normalizer.fit(ds, ["z", "t"])
    pairs = ForecastPairs(stack_fields(norm.normalise(ds), ["z", "t"]), lead_hours=12)
    for lam in (0.0, 0.1):
        model = small_model()
        config = rc.TrainConfig(steps=30, lr=3e-3, lambda_rr=lam, rr_reduction="mean", eval_every=10, seed=1)
        result = train_forecaster(model, pairs, config, batch_size=16, run_dir=tmp_path / f"lam{lam}", progress=False)
        task = result.history["task"].dropna()
        assert task.iloc[-1] < 0.5 * task.iloc[0]
        assert ("rr" in result.history) == (lam > 0)
    again = train_forecaster(small_model(), pairs, config, batch_size=16, run_dir=tmp_path / "lam0.1", progress=False)
    assert again.resumed_from == len(again.history)  # a finished run is loaded, not retrained


class Persist(nn.Module):
    """A 'model' that returns its input: its scores must be those of persistence."""

    def forward(self, x):
        return x


def test_scores_of_a_persistence_model_equal_persistence():
    ds = waves()
    norm = Normalizer.fit(ds.isel(member=[0]), ["z", "t"])
    fields = stack_fields(norm.normalise(ds), ["z", "t"])
    clim = ds[["z", "t"]].isel(member=0).mean("time").to_array().values
    table = evaluate_forecaster(Persist(), fields, norm, 6, [6, 24], climatology=clim)
    assert list(table.variable) == ["z", "t", "z", "t"] and list(table.lead_hours) == [6, 6, 24, 24]
    assert np.allclose(table.rmse, table.rmse_persistence) and np.allclose(table.acc, table.acc_persistence)
    truth = ds.z.isel(time=slice(4, None)).values.reshape(-1, 8, 16)
    before = ds.z.isel(time=slice(None, -4)).values.reshape(-1, 8, 16)
    row = table[(table.variable == "z") & (table.lead_hours == 24)].iloc[0]
    assert row.rmse == pytest.approx(lat_weighted_rmse(before, truth, LAT))
    assert row.acc == pytest.approx(lat_weighted_acc(before, truth, clim[0], LAT))
    assert row.rmse_climatology == pytest.approx(lat_weighted_rmse(np.broadcast_to(clim[0], truth.shape), truth, LAT))
    assert row.samples == 2 * 36
    with pytest.raises(ValueError, match="multiples"):
        evaluate_forecaster(Persist(), fields, norm, 12, [18])


def test_predict_applies_the_model_repeatedly_in_eval_mode():
    model = small_model(dropout=0.5)
    x = torch.randn(5, 2, 8, 16)
    twice = predict(model, x, steps=2, batch_size=2)
    assert model.training  # restored
    model.eval()
    with torch.no_grad():
        assert torch.allclose(twice, model(model(x)), atol=1e-6)
