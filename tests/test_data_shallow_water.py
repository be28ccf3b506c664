"""The simulated atmosphere: transforms and dynamics against torch-harmonics, forcing, a tiny run, the cache."""

import json
import math

import numpy as np
import pytest
import torch
import torch_harmonics as th
import xarray as xr
from torch_harmonics.examples import ShallowWaterSolver
from torch_harmonics.quadrature import legendre_gauss_weights

from racecar_core.data import shallow_water as sw
from racecar_core.data.shallow_water import (
    OUTPUT_LAT,
    OUTPUT_LON,
    ShallowWaterModel,
    ShallowWaterSettings,
    cache_path,
    load_shallow_water,
    simulate_shallow_water,
)
from racecar_core.data.sphere import Transforms

TINY = dict(nlat=16, nlon=32, truncation=10, forcing_degrees=(4, 8), members=2, days=1.0, spinup_days=1.0)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def test_batched_transforms_equal_torch_harmonics():
    sh = Transforms(32, 64, 22)
    x = torch.randn(3, 2, 32, 64, dtype=torch.float64)
    v = torch.randn(3, 2, 32, 64, dtype=torch.float64)  # three vector fields
    c, cv = sh.sht(x), sh.vsht(v)
    for name, mine, arg in (("sht", c, x), ("isht", sh.isht(c), c), ("vsht", cv, v), ("ivsht", sh.ivsht(cv), cv)):
        assert torch.allclose(mine, sh.library[name](arg), atol=1e-12), name
    assert torch.allclose(sh.isht(c), sh.evaluate(c, np.rad2deg(sh.lats.numpy()), 64), atol=1e-12)


def test_evaluate_reproduces_low_degree_fields_on_the_weatherbench_grid():
    sh = Transforms(32, 64, 22)
    lat, lon = sh.lats[:, None], torch.arange(64)[None, :] * (2 * math.pi / 64)
    field = 3 + torch.sin(lat) + torch.cos(lat) * torch.cos(lon + 0.5) + torch.cos(lat) ** 2 * torch.sin(2 * lon)
    out = sh.evaluate(sh.sht(field.to(torch.float64)), OUTPUT_LAT, 64).numpy()
    la, lo = np.deg2rad(OUTPUT_LAT)[:, None], np.deg2rad(OUTPUT_LON)[None, :]
    expected = 3 + np.sin(la) + np.cos(la) * np.cos(lo + 0.5) + np.cos(la) ** 2 * np.sin(2 * lo)
    assert np.allclose(out, expected, atol=1e-10)


def random_state(model: ShallowWaterModel, batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    state = model.initial_state(batch, g)
    state[:, 2] = 0.3 * state[:, 1] * torch.rand(state[:, 1].shape, generator=g, dtype=torch.float64)  # divergence
    state[:, 0] += model.phi_eq * 0.05 * model.mask
    return state


def test_shallow_water_dynamics_equal_torch_harmonics_solver():
    model = ShallowWaterModel(ShallowWaterSettings())
    library = ShallowWaterSolver(32, 64, 60.0, lmax=22, mmax=22, grid="legendre-gauss")
    state = random_state(model, 2)
    mine = model.dynamics(state)[:, :3]
    for b in range(2):
        ref = library.dudtspec(state[b, :3].clone())
        for k in range(3):
            assert torch.allclose(mine[b, k], ref[k], rtol=1e-9, atol=1e-12 * ref[k].abs().max()), (b, k)


def test_tracer_advection_leaves_a_uniform_tracer_uniform():
    model = ShallowWaterModel(ShallowWaterSettings())
    state = random_state(model, 1)
    state[:, 3] = 0
    state[:, 3, 0, 0] = 270.0 * math.sqrt(4 * math.pi)  # a constant field
    d_theta = model.dynamics(state)[:, 3]
    flux_scale = 270.0 * model.sh.isht(state[:, 2]).abs().max()  # θ δ: the size of either advection term
    assert d_theta.abs().max() < 1e-6 * flux_scale


def test_balanced_initial_state_has_no_divergence_tendency():
    model = ShallowWaterModel(ShallowWaterSettings())
    state = model.initial_state(2, torch.Generator().manual_seed(1))
    d = model.dynamics(state)
    assert d[:, 2].abs().max() < 1e-8 * d[:, 1].abs().max()
    uv = model.wind(state[:, 1:3])
    assert 10 < float(uv.pow(2).sum(1).mean().sqrt()) < 20  # about 15 m/s


def test_forcing_has_the_requested_rms_and_correlation_time():
    settings = ShallowWaterSettings(forcing=5e-6, forcing_days=0.25)
    model = ShallowWaterModel(settings)
    g = torch.Generator().manual_seed(0)
    forcing = torch.zeros((32, model.sh.lmax, model.sh.lmax), dtype=model.sh.ctype)
    for _ in range(120):  # 60 h, ten correlation times
        forcing = model.next_forcing(forcing, g)
    grid = model.sh.isht(forcing)
    _, w = legendre_gauss_weights(settings.nlat, -1, 1)
    rms = float(((grid**2).mean(-1) * w).sum(-1).div(w.sum()).mean().sqrt()) * 86400
    assert rms == pytest.approx(5e-6, rel=0.1)
    assert model.forcing_decay == pytest.approx(math.exp(-0.5 / 24 / 0.25))
    assert (forcing[..., 0].imag == 0).all()  # m = 0 coefficients of a real field
    assert (forcing[:, :4] == 0).all() and (forcing[:, 16:] == 0).all()  # degrees 8..15 only


def test_tiny_simulation_is_finite_reproducible_and_on_the_weatherbench_grid():
    settings = ShallowWaterSettings(**TINY)
    ds = simulate_shallow_water(settings, progress=False)
    assert dict(ds.sizes) == {"member": 2, "time": 4, "lat": 32, "lon": 64}
    assert np.allclose(ds.lat, OUTPUT_LAT) and np.allclose(ds.lon, OUTPUT_LON)
    assert np.isfinite(ds.z).all() and np.isfinite(ds.t).all()
    assert 0.9 * settings.mean_depth * sw.GRAVITY < float(ds.z.mean()) < 1.1 * settings.mean_depth * sw.GRAVITY
    area = np.cos(np.deg2rad(ds.lat))
    assert float(ds.t.weighted(area).mean()) == pytest.approx(settings.tracer_mean, abs=2.0)
    assert float(ds.z.std("lon").mean()) > 10  # the flow is not at rest
    assert not np.allclose(ds.z.isel(member=0), ds.z.isel(member=1))
    assert json.loads(ds.attrs["settings"])["seed"] == 0 and ds.attrs["key"] == settings.key()
    again = simulate_shallow_water(settings, progress=False)
    assert np.array_equal(ds.z.values, again.z.values)
    other = simulate_shallow_water(ShallowWaterSettings(**{**TINY, "seed": 1}), progress=False)
    assert not np.allclose(ds.z.values, other.z.values)


def test_cache_is_written_once_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("RACECAR_CACHE_DIR", str(tmp_path))
    settings = ShallowWaterSettings(**TINY)
    ds = load_shallow_water(settings, progress=False)
    path = cache_path(settings)
    assert path.parent.parent == tmp_path and path.exists() and settings.key() in path.name

    def no_simulation(*args, **kwargs):
        raise AssertionError("simulated again although the cache holds the data")

    monkeypatch.setattr(sw, "simulate_shallow_water", no_simulation)
    cached = load_shallow_water(settings, progress=False)
    assert np.array_equal(cached.z.values, ds.z.values) and cached.attrs["settings"] == ds.attrs["settings"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert cache_path(ShallowWaterSettings(**{**TINY, "seed": 5})) != path  # other settings, other file


def test_interrupted_generation_leaves_no_file(tmp_path, monkeypatch):
    settings = ShallowWaterSettings(**TINY)

    def failing_write(self, path, *args, **kwargs):
        open(path, "wb").write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, "to_netcdf", failing_write)
    with pytest.raises(KeyboardInterrupt):
        load_shallow_water(settings, cache=tmp_path, progress=False)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_cached_file_with_other_settings_is_refused(tmp_path):
    settings = ShallowWaterSettings(**TINY)
    path = cache_path(settings, tmp_path)
    path.parent.mkdir(parents=True)
    other = simulate_shallow_water(ShallowWaterSettings(**{**TINY, "seed": 3}), progress=False)
    other.to_netcdf(path)
    with pytest.raises(ValueError, match="other settings"):
        load_shallow_water(settings, cache=tmp_path, progress=False)


@pytest.mark.parametrize("bad,match", [
    (dict(output_hours=5.0, step_minutes=40.0), "whole number of steps"),
    (dict(days=1.1), "whole number of outputs"),
    (dict(truncation=40), "truncation"),
    (dict(pole_depth_drop=5000.0), "pole_depth_drop"),
    (dict(forcing_degrees=(10, 30)), "forcing_degrees"),
    (dict(members=0), "members"),
    (dict(precision="float16"), "precision"),
])
def test_settings_are_checked(bad, match):
    with pytest.raises(ValueError, match=match):
        ShallowWaterSettings(**bad)


def test_unstable_settings_stop_with_a_message():
    settings = ShallowWaterSettings(**{**TINY, "step_minutes": 360.0, "output_hours": 6.0, "days": 20.0,
                                       "spinup_days": 0.0, "forcing": 1e-3})
    with pytest.raises(FloatingPointError, match="non-finite.*step_minutes"):
        simulate_shallow_water(settings, progress=False)


def test_transforms_reject_a_truncation_beyond_the_grid():
    with pytest.raises(ValueError, match="lmax"):
        Transforms(16, 32, 20)
    assert isinstance(th.__version__, str)
