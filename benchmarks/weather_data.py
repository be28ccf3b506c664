"""The simulated atmosphere: generation time from an empty cache, whether it stays active, and how predictable it is.

1. Generation: ``load_shallow_water`` into an empty temporary cache (simulation + netCDF write), wall-clock
   and CPU seconds, then the time to read it back from the cache.
2. Activity: 10-day means of the zonal variance of ``z`` and ``t`` and of the zonal-mean ``z`` in mid-latitudes
   over the output, per member: forcing and dissipation must keep them level (no blow-up, no decay to rest).
3. Predictability on the test members (6 and 7; climatology from members 0-5): latitude-weighted RMSE and ACC of
   persistence and RMSE of climatology at 6, 24, 72 and 120 h; and the RMSE of a "perfect model" forecast (the
   same equations from the complete true state, the random forcing continued by its expected decay) at 24 and
   72 h, a floor no forecast from z and t alone can beat.

    python benchmarks/weather_data.py [--threads 1] [--out weather_data.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

from racecar_core.data.shallow_water import (
    OUTPUT_LAT,
    ShallowWaterModel,
    ShallowWaterSettings,
    load_shallow_water,
)
from racecar_core.runs import environment
from racecar_core.weather import climatology, climatology_forecast, lat_weighted_acc, lat_weighted_rmse, persistence

SAMPLES = ("member", "time")


def generation(settings: ShallowWaterSettings) -> tuple[dict, xr.Dataset]:  # noqa: F821
    with tempfile.TemporaryDirectory() as cache:
        load_before = os.getloadavg()
        wall, cpu = time.perf_counter(), time.process_time()
        ds = load_shallow_water(settings, cache=cache, progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        read = time.perf_counter()
        load_shallow_water(settings, cache=cache, progress=False)
        read = time.perf_counter() - read
    return {"seconds_wall": round(wall, 1), "seconds_cpu": round(cpu, 1),
            "simulation_seconds_wall": ds.attrs["generation_seconds"],
            "read_from_cache_seconds": round(read, 2), "load_average_before": load_before,
            "load_average_after": os.getloadavg()}, ds


def activity(ds) -> dict:
    blocks = ds.coarsen(time=40, boundary="trim").mean()  # 10-day means
    zonal_var = {v: ds[v].var("lon").mean("lat").coarsen(time=40, boundary="trim").mean() for v in ("z", "t")}
    midlat = blocks.z.sel(lat=slice(30, 60)).mean(("lat", "lon"))
    out = {}
    for v in ("z", "t"):
        series = zonal_var[v].mean("member").values
        out[f"{v}_zonal_variance_10day"] = [round(float(s), 3) for s in series]
        out[f"{v}_zonal_variance_last_over_first"] = round(float(series[-1] / series[0]), 3)
    out["z_midlat_mean_10day_range"] = round(float(midlat.max("time").mean() - midlat.min("time").mean()), 1)
    out["finite"] = bool(np.isfinite(ds.z).all() and np.isfinite(ds.t).all())
    return out


def skill(ds) -> dict:
    train, test = ds.isel(member=slice(0, 6)), ds.isel(member=slice(6, None))
    clim = climatology(train, sample_dims=SAMPLES)
    out = {}
    for v in ("z", "t"):
        out[v] = {"climatology_rmse": round(float(lat_weighted_rmse(climatology_forecast(clim[v], test[v]), test[v],
                                                                   sample_dims=SAMPLES)), 3)}
        for hours in (6, 24, 72, 120):
            f, t = persistence(test[v], f"{hours}h")
            out[v][f"persistence_rmse_{hours}h"] = round(float(lat_weighted_rmse(f, t, sample_dims=SAMPLES)), 3)
            out[v][f"persistence_acc_{hours}h"] = round(float(lat_weighted_acc(f, t, clim[v], sample_dims=SAMPLES)), 3)
    return out


def perfect_model(settings: ShallowWaterSettings, inits: int = 4, spacing_days: float = 5.0, seed: int = 123) -> dict:
    model = ShallowWaterModel(settings, getattr(torch, settings.precision))
    g = torch.Generator().manual_seed(seed)
    state = model.initial_state(settings.members, g)
    forcing, history = torch.zeros_like(state[:, 1]), []
    per_day = round(86400 / model.dt)
    for _ in range(round(settings.spinup_days * per_day)):
        forcing = model.next_forcing(forcing, g)
        state = model.step(state, history, forcing)
    fields = lambda s: model.sh.evaluate(s[:, [0, 3]], OUTPUT_LAT, 64).numpy()  # noqa: E731
    errors = {24: [], 72: []}
    for _ in range(inits):
        for _ in range(round(spacing_days * per_day)):
            forcing = model.next_forcing(forcing, g)
            state = model.step(state, history, forcing)
        truth, t_forcing, t_history = state.clone(), forcing.clone(), [h.clone() for h in history]
        fc, f_forcing, f_history = state.clone(), forcing.clone(), [h.clone() for h in history]
        for n in range(1, 3 * per_day + 1):
            t_forcing = model.next_forcing(t_forcing, g)
            truth = model.step(truth, t_history, t_forcing)
            f_forcing = f_forcing * model.forcing_decay
            fc = model.step(fc, f_history, f_forcing)
            if n in (per_day, 3 * per_day):
                a, b = fields(fc), fields(truth)
                errors[24 if n == per_day else 72].append([np.mean((a[:, i] - b[:, i]) ** 2 * _w()) for i in range(2)])
    return {f"{v}_rmse_{h}h": round(float(np.sqrt(np.mean(np.array(errors[h])[:, i]))), 3)
            for h in (24, 72) for i, v in enumerate(("z", "t"))}


def _w() -> np.ndarray:
    w = np.cos(np.deg2rad(OUTPUT_LAT))
    return (w / w.mean())[:, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = ShallowWaterSettings()
    record = {"settings": settings.key(), "environment": environment()}
    record["generation"], ds = generation(settings)
    print(json.dumps(record["generation"]), flush=True)
    record["activity"] = activity(ds)
    record["skill"] = skill(ds)
    print(json.dumps({k: record[k] for k in ("activity", "skill")}, indent=1), flush=True)
    record["perfect_model"] = perfect_model(settings)
    print(json.dumps(record["perfect_model"]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1, default=str)


if __name__ == "__main__":
    main()
