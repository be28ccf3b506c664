"""Weather forecasting with and without the reverse pass: Std / RR, each with and without dropout.

The paper's application: RR beats standard training ("Std") in latitude-weighted RMSE on ERA5 and CMIP data;
its Fig. 1d reports 0.0123 (Std) vs 0.0106 (RR). A figure caption is quoted as "at least 5.7 %" (ERA5 with
dropout); we could not check that sentence in the text we have, and the chapter labels it so.
The setting is WeatherBench (Rasp et al. 2020): 5.625° grid, a 3-day lead, a ResNet with periodic padding in
longitude. How the reverse pass was applied to that ResNet was not recovered: here it is our design, the
RR loss of :func:`racecar_core.rr_loss` on :func:`racecar_core.forecast.forecast_resnet` (every periodic
convolution a weight layer, identity shortcuts), with ``rr_reduction="mean"``.

Data (``data``):

* ``simulated`` (default): the forced shallow-water atmosphere of :mod:`racecar_core.data.shallow_water`
  (``z``, geopotential-like, and ``t``, an advected temperature-like tracer; 32×64 grid, 6-hourly, 8
  independent members), generated once and cached. Members 0–5 train, member 6 validates (λ), member 7 tests.
  It is a stand-in: its numbers are never ERA5's.
* ``weatherbench``: the user's WeatherBench 5.625° folder (``data_dir``), z500 and t850, WeatherBench's split:
  training 1979–2015, validation 2016, test 2017–2018 (Rasp et al. 2020).

Model: a direct forecast of both variables at ``lead_hours`` from both at the initial time (inputs at one
time only; the authors' fork used 117 input channels), applied repeatedly for the longer leads
(``rollout``). Normalisation and climatology come from the training data only.

λ_RR (a rule fixed before the results): RR is trained for every λ of ``lambda_grid`` and every seed,
without dropout; the chosen λ has the lowest *validation* RMSE at the model's lead, each variable's RMSE
divided by its training standard deviation, averaged over the variables and seeds (the smaller λ on a
tie). The dropout arm uses the same λ. Test data are never used for the choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import metrics, report
from ..chapters import Chapter, Config, MissingDataError, Param, ParameterError
from ..reverse import is_weight_layer
from ..training import TrainConfig
from .grid import Grid, Variant, parse_lambdas, train_grid

DATA = ("simulated", "weatherbench")
SIM_VARIABLES = ("z", "t")
WB_VARIABLES = ("z500", "t850")
SIM_MEMBERS = {"train": (0, 1, 2, 3, 4, 5), "val": (6,), "test": (7,)}
WB_YEARS = {"train": ("1979", "2015"), "val": ("2016", "2016"), "test": ("2017", "2018")}  # WeatherBench's split
UNITS = {"z": "m²/s²", "t": "K", "z500": "m²/s²", "t850": "K"}
ARMS = ("Std", "RR", "Std+dropout", "RR+dropout")
SAMPLES = ("member", "time")

# The paper's Fig. 1d: 0.0123 (Std) vs 0.0106 (RR). A figure caption as quoted to us (not verified here): RR's
# latitude-weighted RMSE at least 5.7 % below Std's (ERA5 with dropout).
PAPER_MIN_REDUCTION = 0.057
FIG1 = {"Std": 0.0123, "RR": 0.0106}
# Rasp & Thuerey (2021), their ResNet on WeatherBench (ERA5, test years 2017-2018), latitude-weighted RMSE:
# (variable, lead in hours) -> value in the variable's units. Shown for real data only.
RASP_THUEREY_2021 = {("z500", 72): 268.0, ("z500", 120): 499.0, ("t850", 72): 1.65, ("t850", 120): 2.41}


def _where_to_get() -> str:
    from ..data.weather import MEDIATUM_URL, WEATHERBENCH_URL

    return (f"Get WeatherBench's 5.625° files (geopotential_500 and temperature_850, 1979-2018) from {MEDIATUM_URL} "
            f"(see {WEATHERBENCH_URL}), unpack them into one folder and pass it with -p data_dir PATH. "
            "Nothing is downloaded at run time; the default data, simulated, needs no files")


def validate(cfg: Config) -> None:
    """Checks across parameters, and that a WeatherBench folder holds the files (before any work starts)."""
    parse_lambdas(cfg.lambda_grid)
    if cfg.lead_hours % 6:
        raise ParameterError(f"parameter 'lead_hours' must be a multiple of 6 (the data are 6-hourly), got {cfg.lead_hours}")
    if cfg.data == "simulated":
        if cfg.data_dir:
            raise ParameterError("parameter 'data_dir' is for data 'weatherbench'; data 'simulated' is generated and cached")
        outputs = cfg.sim_days * 4
        if abs(outputs - round(outputs)) > 1e-9:
            raise ParameterError(f"parameter 'sim_days' must be a multiple of 0.25 (6-hourly output), got {cfg.sim_days}")
        if cfg.sim_days * 24 <= cfg.lead_hours * cfg.rollout + 24:
            raise ParameterError(f"sim_days ({cfg.sim_days}) must exceed the longest lead "
                                 f"(lead_hours × rollout = {cfg.lead_hours * cfg.rollout} h) by more than a day")
        return
    if not cfg.data_dir:
        raise MissingDataError(f"data 'weatherbench' needs data_dir, a WeatherBench 5.625° folder. {_where_to_get()}.")
    from ..data.weather import _weatherbench_files

    for name in WB_VARIABLES:
        try:
            _weatherbench_files(Path(cfg.data_dir).expanduser(), name)
        except FileNotFoundError as error:
            raise MissingDataError(f"data 'weatherbench': {error}") from None


CHAPTER = Chapter(
    name="weather",
    title="Weather forecasting",
    notebook="book/weather.ipynb",
    params=(
        Param("data", str, None, "simulated (a shallow-water atmosphere generated and cached; always available) or "
              "weatherbench (the user's WeatherBench 5.625° files in data_dir)", choices=DATA),
        Param("data_dir", str, "", "data weatherbench: the folder with geopotential_500/ and temperature_850/ "
              "(netCDF per year, 1979-2018, from https://mediatum.ub.tum.de/1524895)", folder=True),
        Param("sim_days", float, None, "data simulated: days of output per member (8 members)", min=1.0, max=3650.0),
        Param("sim_spinup_days", float, None, "data simulated: days simulated before the output starts", min=0.0,
              max=3650.0),
        Param("lead_hours", int, None, "the model's lead time in hours (a multiple of 6; the paper: 3 days)", min=6,
              max=24 * 30),
        Param("rollout", int, None, "scores at 1 .. rollout times the lead (the model applied repeatedly)", min=1, max=20),
        Param("width", int, None, "channels of the forecast ResNet (Rasp & Thuerey; the authors' fork: 128)", min=1,
              max=4096),
        Param("blocks", int, None, "residual blocks of the forecast ResNet (the authors' fork: 19)", min=0, max=200),
        Param("dropout", float, 0.1, "dropout rate of the dropout arms (Rasp & Thuerey 2021: 0.1)", min=0.01, max=0.9),
        Param("seeds", int, None, "number of seeds, 0 .. seeds-1", min=1, max=1000),
        Param("steps", int, None, "training steps of every run", min=1, max=10_000_000),
        Param("batch_size", int, None, "mini-batch size", min=1, max=100_000),
        Param("lr", float, None, "Adam learning rate (the authors' fork: 5e-5)", min=1e-9, max=1.0),
        Param("lambda_rr", float, 0.0, "weight of the RR loss (mean reduction); 0: chosen on validation data "
              "from lambda_grid", min=0.0),
        Param("lambda_grid", str, None, "lambda_rr values tried (every seed, without dropout), comma-separated"),
        Param("convention", str, "weatherbench", "latitude-weighted RMSE: weatherbench (time mean inside the square "
              "root, WeatherBench's score) or paper (time mean outside, the paper's equation)",
              choices=("weatherbench", "paper")),
        Param("amp", bool, False, "bf16 autocast on a GPU (ignored on the CPU)"),
    ),
    presets={
        "smoke": {"data": "simulated", "sim_days": 4.0, "sim_spinup_days": 1.0, "lead_hours": 24, "rollout": 2,
                  "width": 4, "blocks": 1, "seeds": 2, "steps": 3, "batch_size": 8, "lr": 1e-3,
                  "lambda_grid": "0.1"},
        "cpu": {"data": "simulated", "sim_days": 91.25, "sim_spinup_days": 30.0, "lead_hours": 72, "rollout": 2,
                "width": 16, "blocks": 2, "seeds": 3, "steps": 100, "batch_size": 32, "lr": 1e-3,
                "lambda_grid": "0.03,0.3"},
        "paper": {"data": "weatherbench", "sim_days": 91.25, "sim_spinup_days": 30.0, "lead_hours": 72, "rollout": 2,
                  "width": 128, "blocks": 19, "seeds": 3, "steps": 50_000, "batch_size": 32, "lr": 5e-5,
                  "lambda_grid": "0.01,0.1,1"},
    },
    validate=validate,
)


def lambdas(cfg) -> list[float]:
    """The λ values trained: ``lambda_rr`` alone when it is set, else ``lambda_grid``."""
    return [float(cfg.lambda_rr)] if cfg.lambda_rr else parse_lambdas(cfg.lambda_grid)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


@dataclass
class WeatherData:
    """The splits in physical units, the normalised fields, the training pairs and the baselines' inputs."""

    name: str  # for figures and claims: a stand-in says so
    real: bool
    variables: list[str]
    splits: dict  # split -> xr.Dataset (physical units)
    norm: object  # racecar_core.data.weather.Normalizer (training statistics)
    fields: dict  # split -> normalised xr.DataArray (member, time, channel, lat, lon)
    pairs: object  # ForecastPairs of the training split at the model's lead
    climatology: np.ndarray  # [channels, lat, lon], physical units, from the training split
    lead_hours: int
    info: dict  # how the data came about (e.g. generation seconds, cache)

    @property
    def lat(self) -> np.ndarray:
        return self.splits["train"].lat.values

    @property
    def lon(self) -> np.ndarray:
        return self.splits["train"].lon.values


def sim_settings(cfg):
    """The shallow-water settings of ``cfg`` (the library's defaults but for the length of the run)."""
    from ..data.shallow_water import ShallowWaterSettings

    return ShallowWaterSettings(days=cfg.sim_days, spinup_days=cfg.sim_spinup_days)


def load_data(cfg, *, progress: bool | str = True) -> WeatherData:
    """The splits of ``cfg.data`` (see the module docstring), normalised with the training statistics."""
    from ..data.weather import ForecastPairs, Normalizer, stack_fields
    from ..weather import climatology

    if cfg.data == "simulated":
        from ..data.shallow_water import cache_path, load_shallow_water

        settings = sim_settings(cfg)
        cached = cache_path(settings).exists()
        ds = load_shallow_water(settings, progress=progress and "simulating the atmosphere")
        splits = {k: ds.isel(member=list(m)) for k, m in SIM_MEMBERS.items()}
        variables, real = list(SIM_VARIABLES), False
        name = "simulated shallow-water atmosphere (a stand-in for ERA5)"
        info = {"settings_key": settings.key(), "from_cache": cached, "cache_file": str(cache_path(settings)),
                "generation_seconds": float(ds.attrs.get("generation_seconds", float("nan"))),
                "members": dict(SIM_MEMBERS), "days_per_member": cfg.sim_days}
    else:
        from ..data.weather import open_weatherbench

        first, last = WB_YEARS["train"][0], WB_YEARS["test"][1]
        ds = open_weatherbench(Path(cfg.data_dir).expanduser(), WB_VARIABLES, years=slice(first, last))
        splits = {k: ds.sel(time=slice(a, b)) for k, (a, b) in WB_YEARS.items()}
        empty = [k for k, s in splits.items() if not s.sizes["time"]]
        if empty:
            raise ValueError(f"{cfg.data_dir}: no times for the {', '.join(empty)} split(s) "
                             f"({', '.join(f'{k} {a}-{b}' for k, (a, b) in WB_YEARS.items())}). {_where_to_get()}")
        variables, real = list(WB_VARIABLES), True
        name = "WeatherBench 5.625° (ERA5)"
        info = {"years": dict(WB_YEARS), "folder": str(cfg.data_dir)}
    norm = Normalizer.fit(splits["train"], variables)
    fields = {k: stack_fields(norm.normalise(s), variables) for k, s in splits.items()}
    clim = np.stack([np.asarray(climatology(splits["train"][v], sample_dims=SAMPLES)) for v in variables])
    pairs = ForecastPairs(fields["train"], cfg.lead_hours)
    info.update({f"{k}_times": int(s.sizes["time"]) * int(s.sizes.get("member", 1)) for k, s in splits.items()},
                train_pairs=len(pairs))
    return WeatherData(name, real, variables, splits, norm, fields, pairs, clim, cfg.lead_hours, info)


def predictability(data: WeatherData, hours: Sequence[int] = (6, 24, 72, 120), split: str = "test") -> pd.DataFrame:
    """Persistence (RMSE, ACC) at ``hours`` and climatology (RMSE) on ``split``, per variable: how hard the
    forecasting task is. ``skill`` = 1 − persistence RMSE / climatology RMSE (above 0: persistence beats the
    climatology)."""
    import xarray as xr

    from ..weather import climatology_forecast, lat_weighted_acc, lat_weighted_rmse, persistence

    ds = data.splits[split]
    rows = []
    for c, v in enumerate(data.variables):
        clim = xr.DataArray(data.climatology[c], dims=("lat", "lon"), coords={"lat": ds.lat, "lon": ds.lon})
        rmse_clim = float(lat_weighted_rmse(climatology_forecast(clim, ds[v]), ds[v], sample_dims=SAMPLES))
        span = (ds.time.values[-1] - ds.time.values[0]) / np.timedelta64(1, "h")
        for h in (h for h in hours if h < span):  # leads the split is long enough for
            f, t = persistence(ds[v], f"{h}h")
            rmse = float(lat_weighted_rmse(f, t, sample_dims=SAMPLES))
            rows.append({"variable": v, "lead_hours": h, "rmse_persistence": rmse,
                         "acc_persistence": float(lat_weighted_acc(f, t, clim, sample_dims=SAMPLES)),
                         "rmse_climatology": rmse_clim, "skill": 1 - rmse / rmse_clim})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Models, training, scores
# --------------------------------------------------------------------------------------------------


def make_model(cfg, channels: int, dropout: float = 0.0) -> nn.Sequential:
    """The periodic forecast ResNet of ``cfg`` (``channels`` in and out)."""
    from ..forecast import forecast_resnet

    return forecast_resnet(channels, channels, width=cfg.width, blocks=cfg.blocks, dropout=dropout)


def weight_layer_names(model: nn.Module) -> list[str]:
    """Names of the weight layers (periodic convolutions), in the order of the reverse pass's pairs."""
    return [name for name, m in model.named_modules() if is_weight_layer(m)]


def base_config(cfg) -> TrainConfig:
    cuda = torch.cuda.is_available()
    every = max(cfg.steps // 10, 1)
    return TrainConfig(steps=cfg.steps, lr=cfg.lr, rr_reduction="mean", eval_every=every,
                       checkpoint_every=max(cfg.steps // 4, 1), amp=cfg.amp and cuda)


def leads(cfg) -> list[int]:
    return [cfg.lead_hours * k for k in range(1, cfg.rollout + 1)]


def probe_batch(data: WeatherData, n: int = 32) -> torch.Tensor:
    """``n`` test inputs spread over the test period, for the reverse-pass measures."""
    from ..data.weather import ForecastPairs

    pairs = ForecastPairs(data.fields["test"], data.lead_hours)
    rows = np.linspace(0, len(pairs) - 1, min(n, len(pairs))).round().astype(int)
    return pairs.x(torch.as_tensor(rows))


def measure(model: nn.Module, data: WeatherData, cfg, probe: torch.Tensor) -> dict:
    """Final measures of one run: test RMSE and ACC per variable and lead (``rmse_<var>_<lead>h``), the
    normalised validation RMSE at the model's lead (``val_score``, for the choice of λ) and the reverse
    pass's per-layer relative error on ``probe`` (batch statistics, as in training)."""
    from ..forecast import evaluate_forecaster

    test = evaluate_forecaster(model, data.fields["test"], data.norm, data.lead_hours, leads(cfg),
                               climatology=data.climatology, convention=cfg.convention)
    val = evaluate_forecaster(model, data.fields["val"], data.norm, data.lead_hours, convention=cfg.convention)
    out = {}
    for r in test.itertuples():
        out[f"rmse_{r.variable}_{r.lead_hours}h"] = float(r.rmse)
        out[f"acc_{r.variable}_{r.lead_hours}h"] = float(r.acc)
    std = dict(zip(data.norm.variables, data.norm.std))
    out["val_score"] = float(np.mean([r.rmse / std[r.variable] for r in val.itertuples()]))
    errors = metrics.layer_errors(model, probe.to(metrics.model_device(model)))
    out.update(rec_err_mean=float(np.mean(errors)), rec_err_layers=[float(e) for e in errors])
    return out


def rr_name(lam: float) -> str:
    return f"RR-lambda{lam:g}"


@dataclass
class Runs:
    """All trainings of the chapter: ``grid`` (no dropout: Std and RR at every λ) and ``dropout`` (Std and RR
    at the chosen λ, with dropout)."""

    grid: Grid
    dropout: Grid
    lambdas: list[float]
    chosen: float

    @property
    def raw(self) -> pd.DataFrame:
        """Every run's final measures, RR runs named by λ (``RR-lambda0.1``)."""
        return pd.concat([self.grid.frame, self.dropout.frame], ignore_index=True)

    @property
    def frame(self) -> pd.DataFrame:
        """The four arms (Std, RR at the chosen λ, Std+dropout, RR+dropout), one row per (arm, seed)."""
        return select_arms(self.raw, self.chosen)

    def model(self, arm: str, seed: int = 0) -> nn.Module:
        if arm == "RR":
            return self.grid.model(rr_name(self.chosen), seed)
        return (self.dropout if arm.endswith("+dropout") else self.grid).model(arm, seed)

    def histories(self) -> dict[str, pd.DataFrame]:
        out = {f"{v}/{s}": r.history for (v, s), r in self.grid.runs.items() if v in ("Std", rr_name(self.chosen))}
        out.update(self.dropout.histories())
        return {k.replace(rr_name(self.chosen), "RR"): v for k, v in out.items()}


def select_arms(raw: pd.DataFrame, lam: float) -> pd.DataFrame:
    """The rows of Std, Std+dropout, RR+dropout and of the RR run at ``lam`` (renamed ``RR``), in that order
    (any frame with ``variant`` and ``seed`` columns: final measures, per-layer errors)."""
    keep = raw[raw.variant.isin(["Std", "Std+dropout", "RR+dropout", rr_name(lam)])].copy()
    keep["variant"] = keep.variant.replace({rr_name(lam): "RR"})
    order = {a: i for i, a in enumerate(ARMS)}
    return keep.sort_values(["variant", "seed"], key=lambda s: s.map(order) if s.name == "variant" else s,
                            kind="stable").reset_index(drop=True)


def choose_lambda(raw: pd.DataFrame, lams: Sequence[float]) -> float:
    """The rule fixed before the results: the λ whose RR runs (no dropout) have the lowest mean ``val_score``
    over the seeds (normalised validation RMSE at the model's lead); the smaller λ on a tie."""
    scores = [(float(raw.loc[raw.variant == rr_name(lam), "val_score"].mean()), lam) for lam in sorted(lams)]
    return min(scores)[1]


def train_all(cfg, data: WeatherData, *, run_dir: str = "", progress: bool = True) -> Runs:
    """Std and RR (every λ) without dropout for every seed, the choice of λ on the validation data, then Std
    and RR at that λ with dropout. The runs of one seed start from identical weights and see the same batches."""
    from ..forecast import mse

    channels = len(data.variables)
    probe = probe_batch(data)
    lams = lambdas(cfg)
    identity = {"model": f"forecast_resnet w{cfg.width} b{cfg.blocks}", "data": data.name, "lead_hours": cfg.lead_hours,
                "variables": data.variables}
    common = dict(data=lambda seed: data.pairs.batches(cfg.batch_size, seed=seed), base=base_config(cfg),
                  measure=lambda m: measure(m, data, cfg, probe), loss_fn=mse, progress=progress)
    folder = lambda sub: str(Path(run_dir) / sub) if run_dir else None  # noqa: E731
    grid = train_grid([Variant("Std"), *(Variant(rr_name(lam), lambda_rr=lam) for lam in lams)], range(cfg.seeds),
                      make_model=lambda: make_model(cfg, channels), run_dir=folder("no-dropout"),
                      identity={**identity, "dropout": 0.0}, tag="", **common)
    chosen = lams[0] if len(lams) == 1 else choose_lambda(grid.frame, lams)
    dropout = train_grid([Variant("Std+dropout"), Variant("RR+dropout", lambda_rr=chosen)], range(cfg.seeds),
                         make_model=lambda: make_model(cfg, channels, cfg.dropout), run_dir=folder("dropout"),
                         identity={**identity, "dropout": cfg.dropout}, tag="", **common)
    return Runs(grid, dropout, lams, chosen)


def scores(frame: pd.DataFrame, variables: Sequence[str], lead_list: Sequence[int]) -> pd.DataFrame:
    """Long format of the test scores: one row per (variant, seed, variable, lead_hours) with rmse and acc."""
    rows = [{"variant": r["variant"], "seed": r["seed"], "variable": v, "lead_hours": h,
             "rmse": r[f"rmse_{v}_{h}h"], "acc": r[f"acc_{v}_{h}h"]}
            for r in frame.to_dict("records") for v in variables for h in lead_list]
    return pd.DataFrame(rows)


def baselines(data: WeatherData, cfg) -> pd.DataFrame:
    """Persistence and climatology on the test split at the chapter's leads (the pairs the models are scored on)."""
    from ..forecast import evaluate_forecaster

    identity = nn.Identity()
    identity.register_parameter("dummy", nn.Parameter(torch.zeros(1)))  # evaluate_forecaster reads the device from it
    table = evaluate_forecaster(identity, data.fields["test"], data.norm, data.lead_hours, leads(cfg),
                                climatology=data.climatology, convention=cfg.convention)
    return table[["variable", "lead_hours", "samples", "rmse_persistence", "rmse_climatology", "acc_persistence"]]


def rmse_table(score_frame: pd.DataFrame, base: pd.DataFrame, data: WeatherData) -> pd.DataFrame:
    """Latitude-weighted test RMSE by variable and lead: each arm's mean ± sd over the seeds, persistence and
    climatology; for real data also Rasp & Thuerey's (2021) published ResNet where they report the lead."""
    table = {}
    for (v, h), g in score_frame.groupby(["variable", "lead_hours"], sort=False):
        col = {arm: report.mean_sd(g[g.variant == arm].sort_values("seed").rmse, 4) for arm in ARMS
               if (g.variant == arm).any()}
        b = base[(base.variable == v) & (base.lead_hours == h)].iloc[0]
        col["persistence"] = f"{b.rmse_persistence:.4g}"
        col["climatology"] = f"{b.rmse_climatology:.4g}"
        if data.real:
            value = RASP_THUEREY_2021.get((v, h))
            col["Rasp & Thuerey 2021 (ResNet, ERA5)"] = f"{value:g}" if value is not None else "–"
        table[f"{v} ({UNITS.get(v, '')}), {h} h"] = col
    return pd.DataFrame(table)


def published_baselines() -> pd.DataFrame:
    """Rasp & Thuerey's (2021) ResNet on WeatherBench (ERA5 test years 2017-2018), as published."""
    return pd.DataFrame([{"variable": v, "lead": f"{h // 24} days", "rmse": x, "units": UNITS[v]}
                         for (v, h), x in RASP_THUEREY_2021.items()])


def layer_frame(runs: Runs, names: Sequence[str]) -> pd.DataFrame:
    """Per-layer relative reverse error of every run, one row per (variant, seed, layer)."""
    return pd.DataFrame([{"variant": r["variant"], "seed": r["seed"], "layer": i + 1, "name": name, "rel_err": err}
                         for r in runs.raw.to_dict("records") for i, (name, err) in enumerate(zip(names, r["rec_err_layers"]))])


# --------------------------------------------------------------------------------------------------
# Forecast maps
# --------------------------------------------------------------------------------------------------


@dataclass
class Forecasts:
    """Test forecasts of some models at every lead, in physical units: ``values[lead][label]`` and
    ``truth[lead]`` are ``[N, channels, lat, lon]``; ``init[lead]`` and ``valid[lead]`` the times of each row."""

    values: dict
    truth: dict
    init: dict
    valid: dict
    variables: list[str]
    lat: np.ndarray
    lon: np.ndarray


def forecasts(models: Mapping[str, nn.Module], data: WeatherData, cfg) -> Forecasts:
    """Every model's test forecasts at the chapter's leads (the model applied lead / lead_hours times)."""
    from ..data.weather import ForecastPairs
    from ..forecast import predict

    values, truth, init, valid = {}, {}, {}, {}
    for h in leads(cfg):
        pairs = ForecastPairs(data.fields["test"], h)
        x, y = pairs.tensors()
        truth[h] = data.norm.denormalise(y).astype(np.float32)
        values[h] = {label: data.norm.denormalise(predict(m, x, steps=h // cfg.lead_hours)).astype(np.float32)
                     for label, m in models.items()}
        values[h]["persistence"] = data.norm.denormalise(pairs.persistence()).astype(np.float32)
        init[h], valid[h] = pairs.init_time, pairs.valid_time
    return Forecasts(values, truth, init, valid, list(data.variables), data.lat, data.lon)


def map_figure(fc: Forecasts, lead: int, index: int, variable: str, data_name: str, labels: Sequence[str] = ("Std", "RR")):
    """Truth and each model's forecast (top), each model's error and where RR's error is smaller (bottom), for
    one valid time; plain longitude/latitude axes."""
    import matplotlib.pyplot as plt

    c = fc.variables.index(variable)
    truth = fc.truth[lead][index, c]
    preds = {k: fc.values[lead][k][index, c] for k in labels}
    extent = (fc.lon[0] - (fc.lon[1] - fc.lon[0]) / 2, fc.lon[-1] + (fc.lon[1] - fc.lon[0]) / 2,
              fc.lat[0] - (fc.lat[1] - fc.lat[0]) / 2, fc.lat[-1] + (fc.lat[1] - fc.lat[0]) / 2)
    lo, hi = float(truth.min()), float(truth.max())
    errors = {k: p - truth for k, p in preds.items()}
    e = max(float(np.abs(x).max()) for x in errors.values()) or 1.0
    n = len(labels) + 1
    fig, axes = plt.subplots(2, n, figsize=(3.3 * n, 4.6), squeeze=False)
    unit = UNITS.get(variable, "")
    panels = [(axes[0, 0], truth, "truth", "viridis", lo, hi)]
    panels += [(axes[0, i + 1], preds[k], f"{k} forecast", "viridis", lo, hi) for i, k in enumerate(labels)]
    panels += [(axes[1, i], errors[k], f"{k} − truth", "RdBu_r", -e, e) for i, k in enumerate(labels)]
    if len(labels) >= 2:
        a, b = labels[0], labels[-1]
        gain = np.abs(errors[a]) - np.abs(errors[b])
        g = float(np.abs(gain).max()) or 1.0
        panels.append((axes[1, n - 1], gain, f"|{a} error| − |{b} error|\n(red: {b} closer)", "RdBu_r", -g, g))
    else:
        axes[1, n - 1].axis("off")
    for ax, field, title, cmap, vmin, vmax in panels:
        im = ax.imshow(field, origin="lower", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([0, 90, 180, 270, 360])
        ax.set_yticks([-90, -45, 0, 45, 90])
        ax.tick_params(labelsize=7)
        fig.colorbar(im, ax=ax, shrink=0.8).ax.tick_params(labelsize=7)
    for ax in axes[1]:
        ax.set_xlabel("longitude (°E)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("latitude (°N)", fontsize=8)
    when = pd.Timestamp(fc.valid[lead][index]).strftime("%Y-%m-%d %H:%M")
    start = pd.Timestamp(fc.init[lead][index]).strftime("%Y-%m-%d %H:%M")
    fig.suptitle(f"{variable} ({unit}) valid {when}, from {start} (lead {lead} h), seed 0 — {data_name}", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------

def data_figure(data: WeatherData, index: int = 0):
    """Both variables at one time of the training data, and their standard deviation over the training data."""
    import matplotlib.pyplot as plt

    ds = data.splits["train"]
    first = ds.isel(member=0) if "member" in ds.dims else ds
    fig, axes = plt.subplots(2, len(data.variables), figsize=(4.2 * len(data.variables), 4.6), squeeze=False)
    for c, v in enumerate(data.variables):
        sd = ds[v].std([d for d in SAMPLES if d in ds[v].dims])
        when = pd.Timestamp(first.time.values[index])
        for ax, field, title in ((axes[0, c], first[v].isel(time=index), f"{v} at {when:%Y-%m-%d %H:%M}"),
                                 (axes[1, c], sd, f"{v}: standard deviation over the training data")):
            im = ax.imshow(field.values, origin="lower", extent=(0, 360, -90, 90), aspect="auto", cmap="viridis")
            ax.set_title(f"{title} ({UNITS.get(v, '')})", fontsize=9)
            ax.set_xlabel("longitude (°E)", fontsize=8)
            ax.set_ylabel("latitude (°N)", fontsize=8)
            fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(data.name, fontsize=10)
    fig.tight_layout()
    return fig


def predictability_figure(table: pd.DataFrame, data_name: str):
    """Persistence RMSE against lead with the climatology's RMSE, per variable."""
    import matplotlib.pyplot as plt

    variables = list(dict.fromkeys(table.variable))
    fig, axes = plt.subplots(1, len(variables), figsize=(4.0 * len(variables), 3.0), squeeze=False)
    for ax, v in zip(axes[0], variables):
        t = table[table.variable == v]
        ax.plot(t.lead_hours, t.rmse_persistence, "o-", color="k", label="persistence")
        ax.axhline(float(t.rmse_climatology.iloc[0]), color="0.5", ls="--", label="climatology")
        ax.set_xlabel("lead (hours)")
        ax.set_ylabel(f"lat-weighted RMSE ({UNITS.get(v, '')})")
        ax.set_title(v, fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(f"How predictable are the test data? ({data_name})", fontsize=10)
    fig.tight_layout()
    return fig


def rmse_figure(score_frame: pd.DataFrame, base: pd.DataFrame, data_name: str):
    """Test RMSE against lead per variable: every arm (mean ± sd over seeds), persistence and climatology."""
    import matplotlib.pyplot as plt

    from ..plotting import variant_style

    variables = list(dict.fromkeys(score_frame.variable))
    fig, axes = plt.subplots(1, len(variables), figsize=(4.2 * len(variables), 3.2), squeeze=False)
    for ax, v in zip(axes[0], variables):
        s = score_frame[score_frame.variable == v]
        for arm in ARMS:
            g = s[s.variant == arm].groupby("lead_hours").rmse
            if not len(g):
                continue
            mean, sd = g.mean(), g.std().fillna(0)
            ax.errorbar(mean.index, mean.values, yerr=sd.values, **variant_style(arm), marker="o", ms=3, capsize=3,
                        label=arm)
        b = base[base.variable == v]
        ax.plot(b.lead_hours, b.rmse_persistence, "k:", marker="s", ms=3, label="persistence")
        ax.plot(b.lead_hours, b.rmse_climatology, color="0.5", ls="-.", label="climatology")
        ax.set_xticks(sorted(set(b.lead_hours)))
        ax.set_xlabel("lead (hours)")
        ax.set_ylabel(f"lat-weighted RMSE ({UNITS.get(v, '')})")
        ax.set_title(v, fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Test RMSE by lead, mean ± sd over the seeds ({data_name})", fontsize=10)
    fig.tight_layout()
    return fig


def sweep_figure(raw: pd.DataFrame, lams: Sequence[float], chosen: float, data_name: str):
    """Normalised validation RMSE of the RR runs against λ (every seed and the mean), Std as a line."""
    import matplotlib.pyplot as plt

    from ..plotting import VARIANT_COLORS

    fig, ax = plt.subplots(figsize=(4.8, 3.0))
    xs = sorted(lams)
    for _, g in raw.groupby("seed"):
        ax.plot(xs, [float(g.loc[g.variant == rr_name(lam), "val_score"].iloc[0]) for lam in xs], "o-",
                color=VARIANT_COLORS["RR"], alpha=0.35, lw=0.8)
    ax.plot(xs, [float(raw.loc[raw.variant == rr_name(lam), "val_score"].mean()) for lam in xs], "o-",
            color=VARIANT_COLORS["RR"], lw=2, label="RR, mean over seeds")
    ax.axhline(float(raw.loc[raw.variant == "Std", "val_score"].mean()), color=VARIANT_COLORS["Std"], ls="--",
               label="Std, mean over seeds")
    ax.axvline(chosen, color="k", ls=":", lw=0.8, label=f"chosen λ = {chosen:g}")
    ax.set_xscale("log")
    ax.set_xlabel("λ_RR")
    ax.set_ylabel("validation RMSE / training sd")
    ax.legend(fontsize=7)
    ax.set_title(f"Choosing λ on the validation data, no dropout ({data_name})", fontsize=9)
    fig.tight_layout()
    return fig


def histories_figure(runs: Runs, columns: Sequence[str], data_name: str):
    """Training curves (history ``columns`` over steps, log scale) of the four arms, every seed."""
    import matplotlib.pyplot as plt

    from ..plotting import variant_style

    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.2), squeeze=False)
    for ax, column in zip(axes[0], columns):
        for label, history in runs.histories().items():
            arm, seed = label.split("/")
            if column not in history:
                continue
            h = history.dropna(subset=[column])
            ax.plot(h.step, h[column], **variant_style(arm), lw=1, alpha=0.8, label=arm if seed == "0" else None)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(column, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"Training curves, every arm and seed ({data_name})", fontsize=10)
    fig.tight_layout()
    return fig


def layer_error_figure(layers: pd.DataFrame, data_name: str):
    """Relative reverse error of every weight layer, one line per run of the four arms."""
    from ..plotting import layer_error_figure

    return layer_error_figure(layers, xlabel="weight layer m (1: the 7×7 input convolution; last: the output convolution)",
                              title=f"Reverse-pass error per layer at the end of training, every seed ({data_name}, "
                                    "test inputs)")


# --------------------------------------------------------------------------------------------------
# Reproduction check
# --------------------------------------------------------------------------------------------------

SOURCES = {
    "rmse_dropout": "a figure caption as quoted to us (ERA5 with dropout: at least 5.7 %; not verified here)",
    "rmse": "Fig. 1d (0.0123 vs 0.0106)",
    "layers": report.OUR_EXTRAPOLATION,
}


def setting(cfg, data_name: str, lambda_rr: float) -> report.Setting:
    """What the chapter's claims share (preset, seeds, data set, the λ_RR used)."""
    return report.Setting("weather", cfg.preset, tuple(range(cfg.seeds)), data_name, report.format_lambda(lambda_rr))


def reductions(score_frame: pd.DataFrame, subject: str, other: str, lead_hours: int) -> pd.DataFrame:
    """Per seed: the relative reduction ``1 − RMSE(subject) / RMSE(other)`` of each variable at ``lead_hours``
    (columns: the variables) and their mean (``mean``)."""
    s = score_frame[score_frame.lead_hours == lead_hours]
    wide = s.pivot_table(index="seed", columns=["variant", "variable"], values="rmse")
    out = 1 - wide[subject] / wide[other]
    out["mean"] = out.mean(axis=1)
    return out


def _rmse_claim(where: report.Setting, key: str, score_frame: pd.DataFrame, subject: str, other: str,
                lead_hours: int, real: bool, claim: str, paper: str) -> report.Claim:
    red = reductions(score_frame, subject, other, lead_hours)
    mean = float(red["mean"].mean())
    every = bool((red["mean"] > 0).all())
    holds = mean >= PAPER_MIN_REDUCTION and every
    per_var = ", ".join(f"{v} {report.mean_sd(100 * red[v], 3)} %" for v in red.columns if v != "mean")
    where_text = ("on WeatherBench (ERA5) data" if real else
                  "on the SIMULATED shallow-water stand-in, not ERA5")
    measured = (f"{where_text}: relative RMSE reduction {subject} vs {other} at {lead_hours} h, mean over the variables "
                f"{report.mean_sd(100 * red['mean'], 3)} % ({per_var}); {subject} lower in "
                f"{int((red['mean'] > 0).sum())}/{len(red)} seeds")
    return where.claim(key, claim, source=SOURCES[key], paper=paper, measured=measured,
                       verdict=report.verdict(holds, partly=mean > 0),
                       test=f"mean reduction over the seeds ≥ {100 * PAPER_MIN_REDUCTION:.1f} % (the paper's lower bound) "
                       "and RR lower in every seed; partly: a mean reduction above 0. The reduction of one seed is the "
                       "mean over the variables of 1 − RMSE(RR)/RMSE(Std), latitude-weighted, test data")


def claims(score_frame: pd.DataFrame, layers: pd.DataFrame, lead_hours: int, where: report.Setting,
           real: bool) -> list[report.Claim]:
    """The chapter's claims on the test scores ``score_frame`` (:func:`scores` of :func:`select_arms`: arms
    Std, RR, Std+dropout, RR+dropout) and the per-layer reverse errors ``layers`` (arms as variants), at the
    model's lead ``lead_hours``. ``real``: the data are WeatherBench/ERA5 (else the simulated stand-in)."""
    out = []
    if {"RR+dropout", "Std+dropout"} <= set(score_frame.variant):
        out.append(_rmse_claim(where, "rmse_dropout", score_frame, "RR+dropout", "Std+dropout", lead_hours, real,
                               "With dropout, RR lowers the latitude-weighted RMSE of the forecast by at least 5.7 %",
                               "≥ 5.7 % (ERA5 with dropout; caption not verified)"))
    out.append(_rmse_claim(where, "rmse", score_frame, "RR", "Std", lead_hours, real,
                           "RR lowers the latitude-weighted RMSE of the forecast (without dropout)",
                           f"13.7 % (Fig. 1d: Std {FIG1['Std']} vs RR {FIG1['RR']})"))
    lay = layers[layers.variant.isin(["RR", "Std"])]
    wide = lay.pivot_table(index=["seed", "layer"], columns="variant", values="rel_err")
    below = (wide["RR"] < wide["Std"]).groupby(level="layer").all()
    mean = lay.groupby(["variant", "seed"]).rel_err.mean()
    out.append(where.claim(
        "layers", "Training with the reverse pass makes it reconstruct every layer's input of the forecast ResNet",
        source=SOURCES["layers"],
        measured=f"layers where RR's relative reverse error is below Std's in every seed: {int(below.sum())} of "
        f"{len(below)}; mean over the layers RR {report.mean_sd(mean['RR'])}, Std {report.mean_sd(mean['Std'])}",
        verdict=report.verdict(bool(below.all()), partly=bool(below.any())),
        test="RR's error below Std's at every layer in every seed (no dropout); partly: at some layers"))
    return out


def lambda_claims(raw: pd.DataFrame, layers_raw: pd.DataFrame, runs_lambdas: Sequence[float], variables: Sequence[str],
                  lead_list: Sequence[int], lead_hours: int, where: report.Setting, real: bool) -> dict[float, list]:
    """The no-dropout claims (``rmse``, ``layers``) at every λ trained, for :func:`report.with_lambda_map`."""
    out = {}
    for lam in runs_lambdas:
        frame = select_arms(raw, lam)
        frame = frame[~frame.variant.str.endswith("+dropout")]
        out[lam] = claims(scores(frame, variables, lead_list), select_arms(layers_raw, lam), lead_hours, where, real)
    return out


def headline(score_frame: pd.DataFrame, lead_hours: int, lambda_rr: float) -> dict[str, float]:
    """The numbers a sweep plots: mean test RMSE per arm and variable at the model's lead, the mean relative
    reductions (RR vs Std, with and without dropout) and λ_RR."""
    s = score_frame[score_frame.lead_hours == lead_hours]
    out = {f"rmse {v} {arm}": float(g.rmse.mean()) for (arm, v), g in s.groupby(["variant", "variable"], sort=False)}
    out["reduction"] = float(reductions(score_frame, "RR", "Std", lead_hours)["mean"].mean())
    if "RR+dropout" in set(s.variant):
        out["reduction dropout"] = float(reductions(score_frame, "RR+dropout", "Std+dropout", lead_hours)["mean"].mean())
    out["lambda_rr"] = float(lambda_rr)
    return out

