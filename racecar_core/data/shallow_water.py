"""A simulated atmosphere: forced-dissipative shallow water on the rotating sphere (torch-harmonics).

The default data of the weather chapter, generated in code and cached: one fluid layer on an Earth-sized
rotating sphere, solved spectrally (triangular truncation T21 on a 32×64 Gaussian grid), whose
geopotential ``z = g h`` plays the part of Z500 and whose advected tracer ``t`` plays T850.

Equations (ζ relative vorticity, δ divergence, Φ = g h geopotential, θ tracer, **u** the wind):

    ∂ζ/∂t = −∇·((ζ + f) u)                  − ζ/τ_drag + F      (F: random vorticity forcing)
    ∂δ/∂t = k·∇×((ζ + f) u) − ∇²(Φ + |u|²/2) − δ/τ_drag
    ∂Φ/∂t = −∇·(Φ u)                        − (Φ − Φ_eq)/τ_relax
    ∂θ/∂t = −u·∇θ                           − (θ − θ_eq)/τ_tracer

plus ∇⁸ hyperdiffusion on every field. The unforced terms are those of torch-harmonics'
``ShallowWaterSolver.dudtspec`` (a test checks they agree). Our choices, for a weather-like flow that
neither blows up nor decays to rest: Φ relaxes to ``Φ_eq``, deep in the tropics and shallow at the poles
(a mid-latitude jet in each hemisphere in geostrophic balance) with a stationary wavenumber-2 pattern in
mid-latitudes (a stand-in for land and sea); θ relaxes to a warm equator and cold poles; ``F`` is a
red-noise (AR(1) in time) vorticity forcing at synoptic scales (degrees 8 to 15), which keeps eddies
going and makes the flow unpredictable beyond a few days, as weather is; Rayleigh drag removes the
energy. Time stepping: third-order Adams–Bashforth, 30-minute steps, with the gravity-wave terms
(−Φ_ref δ and −∇²Φ) trapezoidal (semi-implicit). In our comparison of full runs, 15-minute steps gave
the same variances and persistence skill as 30-minute ones (within 4 %), while 45-minute steps excited
spurious fast waves (a z standard deviation seven times larger) and 60-minute steps blew up.

"About two years" of data are ``members`` = 8 independent runs of 91.25 days, simulated side by side as
one batch (on the CPU a batch of 8 costs about 2.5 times one run, not 8 times). Each member starts from
its own random vorticity field (degrees 1 to 15) with Φ from the nonlinear balance equation (∂δ/∂t = 0)
and θ = θ_eq, and runs ``spinup_days`` before its output starts. The output is evaluated from the
spectra on WeatherBench's 5.625° grid (32 latitudes ±87.1875°, 64 longitudes from 0°) every
``output_hours`` and cached as netCDF (see :func:`load_shallow_water`). Members are natural splits:
independent trajectories, so a test member shares no weather with the training members.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time as _time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import Tensor

from ..static import progress_bar
from .sphere import Transforms

RADIUS, OMEGA, GRAVITY = 6.37122e6, 7.292e-5, 9.80616  # Earth, as torch-harmonics' ShallowWaterSolver
GENERATOR_VERSION = 1  # bump when the equations or numerics change: it is part of the cache key
START = "2000-01-01"  # a nominal calendar for the time axis (the simulation has no seasons)


@dataclass(frozen=True)
class ShallowWaterSettings:
    """Everything that defines a simulated data set (all of it goes into the cache key).

    Lengths in days, hours or minutes as named; depths in metres; ``forcing`` is the root-mean-square over
    the sphere of the random vorticity forcing ``F``, in 1/s per day.
    """

    members: int = 8              # independent runs, simulated side by side (a batch costs little more than one)
    days: float = 91.25           # output per member: 8 × 91.25 days = two years
    spinup_days: float = 30.0
    output_hours: float = 6.0
    step_minutes: float = 30.0
    truncation: int = 21          # triangular truncation T21: degrees 0..21
    nlat: int = 32                # Gaussian grid of the solver
    nlon: int = 64
    mean_depth: float = 2000.0
    pole_depth_drop: float = 800.0   # Φ_eq: depth at the equator minus depth at the poles
    jet_latitude: float = 45.0       # where Φ_eq drops most steeply (degrees)
    jet_width: float = 12.0          # (degrees)
    wave_depth: float = 150.0        # amplitude of Φ_eq's stationary wavenumber-2 pattern
    relax_days: float = 10.0
    drag_days: float = 8.0
    tracer_mean: float = 265.0       # θ_eq: K
    tracer_contrast: float = 40.0    # θ_eq: equator minus poles, K
    tracer_relax_days: float = 10.0
    forcing: float = 5.5e-6
    forcing_degrees: tuple[int, int] = (8, 15)
    forcing_days: float = 2.0        # correlation time of the forcing
    hyperdiffusion_hours: float = 6.0  # e-folding time of the highest degree
    precision: str = "float32"       # of the solver ("float32" or "float64")
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "forcing_degrees", tuple(int(d) for d in self.forcing_degrees))
        checks = [
            (self.members >= 1 and self.days > 0 and self.spinup_days >= 0, "members >= 1, days > 0, spinup_days >= 0"),
            (self.output_hours > 0 and self.step_minutes > 0, "output_hours and step_minutes must be > 0"),
            (_is_whole(self.output_hours * 60 / self.step_minutes), "output_hours must be a whole number of steps"),
            (_is_whole(self.days * 24 / self.output_hours), "days must be a whole number of outputs"),
            (1 <= self.truncation < min(self.nlat, self.nlon // 2), "truncation must be below nlat and nlon/2"),
            (self.mean_depth > 0 and 0 <= self.pole_depth_drop < self.mean_depth, "0 <= pole_depth_drop < mean_depth"),
            (min(self.relax_days, self.drag_days, self.tracer_relax_days, self.forcing_days, self.hyperdiffusion_hours) > 0,
             "time scales must be > 0"),
            (1 <= self.forcing_degrees[0] <= self.forcing_degrees[1] <= self.truncation, "forcing_degrees within 1..truncation"),
            (self.forcing >= 0, "forcing must be >= 0"),
            (self.precision in ("float32", "float64"), "precision must be 'float32' or 'float64'"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"ShallowWaterSettings: {message} ({self})")

    @property
    def steps_per_output(self) -> int:
        return round(self.output_hours * 60 / self.step_minutes)

    @property
    def outputs(self) -> int:
        return round(self.days * 24 / self.output_hours)

    def key(self) -> str:
        """A short hash of the settings and the generator version (the cache file name)."""
        text = json.dumps({"version": GENERATOR_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _is_whole(x: float) -> bool:
    return abs(x - round(x)) < 1e-9 and round(x) >= 1


# WeatherBench's 5.625° grid: cell centres, latitudes ascending as in its files
OUTPUT_LAT = np.linspace(-87.1875, 87.1875, 32)
OUTPUT_LON = np.arange(64) * 5.625


class ShallowWaterModel:
    """The forced-dissipative shallow-water equations above, on batches of states ``(B, 4, lmax, mmax)``
    holding the spectra of (Φ, ζ, δ, θ)."""

    def __init__(self, settings: ShallowWaterSettings, dtype: torch.dtype = torch.float64):
        s = self.settings = settings
        self.sh = Transforms(s.nlat, s.nlon, s.truncation + 1, dtype)
        self.dt = s.step_minutes * 60.0
        lmax = self.sh.lmax
        deg = torch.arange(lmax, dtype=torch.float64)[:, None].expand(lmax, lmax)  # degree l of each coefficient
        self.lap = (-deg * (deg + 1) / RADIUS**2).to(dtype)  # ∇² on spectra
        self.invlap = torch.where(deg > 0, -RADIUS**2 / (deg * (deg + 1)).clamp(min=1), 0.0).to(dtype)
        lats = self.sh.lats.to(dtype)
        self.coriolis = (2 * OMEGA * torch.sin(lats))[:, None]
        # reference geopotential of the semi-implicit terms: above the deepest fluid, which the scheme needs to be
        # stable (Simmons, Hoskins & Burridge 1978); with the mean depth alone 60-minute steps blew up
        self.ref_phi = GRAVITY * (s.mean_depth + s.pole_depth_drop)
        mask = torch.tril(torch.ones(lmax, lmax, dtype=torch.bool))  # m <= l
        self.mask = mask
        # implicit ∇⁸ hyperdiffusion, e-folding time hyperdiffusion_hours at the highest degree; zero above the triangle
        scale = (deg * (deg + 1) / ((lmax - 1) * lmax)) ** 4
        self.damping = (torch.exp(-(self.dt / (s.hyperdiffusion_hours * 3600)) * scale) * mask).to(dtype)
        self.phi_eq = self.sh.sht(self._phi_eq_grid(lats))
        theta_eq = s.tracer_mean + s.tracer_contrast * (torch.cos(lats) ** 2 - 2 / 3)  # zero area mean (2/3)
        self.theta_eq = self.sh.sht(theta_eq[:, None].expand(s.nlat, s.nlon).contiguous())
        self.forcing_decay = math.exp(-self.dt / (s.forcing_days * 86400))
        self.forcing_noise = self._forcing_noise_scale(deg, mask).to(dtype)

    def _forcing_noise_scale(self, deg: Tensor, mask: Tensor) -> Tensor:
        """Per (l, m, re/im): the standard deviation of the forcing's innovation in each step."""
        s = self.settings
        lo, hi = s.forcing_degrees
        band = (mask & (deg >= lo) & (deg <= hi)).to(torch.float64)
        scale = torch.stack([band, band], dim=-1)
        scale[:, 0, 0] *= math.sqrt(2)  # m = 0: one real mode with the variance of each of the two of m > 0 (isotropic)
        scale[:, 0, 1] = 0
        # every real mode (2l + 1 per degree) then adds 2 / 4π to the area-mean square of the field (orthonormal
        # harmonics): scale so that the forcing's stationary rms over the sphere is `forcing` (1/s per day)
        real_modes = sum(2 * d + 1 for d in range(lo, hi + 1))
        rms = s.forcing / 86400 / math.sqrt(real_modes / (2 * math.pi))
        return scale * rms * math.sqrt(1 - self.forcing_decay**2)

    def _phi_eq_grid(self, lats: Tensor) -> Tensor:
        s = self.settings
        lat = torch.rad2deg(lats)[:, None]
        lon = torch.arange(s.nlon, dtype=torch.float64)[None, :] * (2 * math.pi / s.nlon)
        step = 0.5 * (torch.tanh((lat.abs() - s.jet_latitude) / s.jet_width) + 1)  # 0 in the tropics, 1 near the poles
        mean_step = float((step[:, 0] * torch.cos(lats)).sum() / torch.cos(lats).sum())
        depth = s.mean_depth - s.pole_depth_drop * (step - mean_step)
        band = torch.exp(-(((lat.abs() - s.jet_latitude) / s.jet_width) ** 2))
        depth = depth + s.wave_depth * band * torch.cos(2 * lon) * torch.sign(lat)  # opposite phase N/S
        return (GRAVITY * depth).to(self.sh.dtype).expand(s.nlat, s.nlon).contiguous()

    # ---- diagnostics ----

    def wind(self, vrt_div: Tensor) -> Tensor:
        """Wind (..., 2, nlat, nlon) from the spectra of (ζ, δ) (..., 2, lmax, mmax), as torch-harmonics' getuv."""
        return self.sh.ivsht(self.invlap * vrt_div / RADIUS)

    def vrt_div(self, uv: Tensor) -> Tensor:
        """Spectra of (curl, divergence) of vector fields (..., 2, nlat, nlon), as torch-harmonics' vrtdivspec."""
        return self.lap * RADIUS * self.sh.vsht(uv)

    # ---- tendencies ----

    def dynamics(self, state: Tensor) -> Tensor:
        """The unforced shallow-water tendencies of (Φ, ζ, δ) plus the advection of θ (no forcing, no damping)."""
        grid = self.sh.isht(state)  # (B, 4, nlat, nlon)
        phi, vrt, div, theta = grid.unbind(-3)
        uv = self.wind(state[..., 1:3, :, :])
        fluxes = torch.stack([uv * (vrt + self.coriolis)[..., None, :, :], uv * phi[..., None, :, :],
                              uv * theta[..., None, :, :]], dim=-4)  # (B, 3, 2, nlat, nlon)
        curl_div = self.vrt_div(fluxes)  # (B, 3, 2, l, m): (curl, div) of each flux
        scalars = self.sh.sht(torch.stack([phi + 0.5 * (uv**2).sum(-3), theta * div], dim=-3))
        return torch.stack([
            -curl_div[..., 1, 1, :, :],                              # Φ: −∇·(Φu)
            -curl_div[..., 0, 1, :, :],                              # ζ: −∇·((ζ+f)u)
            curl_div[..., 0, 0, :, :] - self.lap * scalars[..., 0, :, :],  # δ: k·∇×((ζ+f)u) − ∇²(Φ + KE)
            -curl_div[..., 2, 1, :, :] + scalars[..., 1, :, :],     # θ: −∇·(θu) + θδ = −u·∇θ
        ], dim=-3)

    def tendency(self, state: Tensor, forcing: Tensor) -> Tensor:
        """Dynamics plus relaxation, drag and the vorticity forcing ``forcing`` (B, lmax, mmax)."""
        s = self.settings
        d = self.dynamics(state)
        relax = torch.stack([
            -(state[:, 0] - self.phi_eq) / (s.relax_days * 86400),
            -state[:, 1] / (s.drag_days * 86400) + forcing,
            -state[:, 2] / (s.drag_days * 86400),
            -(state[:, 3] - self.theta_eq) / (s.tracer_relax_days * 86400),
        ], dim=1)
        return d + relax

    def _linear(self, state: Tensor) -> tuple[Tensor, Tensor]:
        """The gravity-wave terms treated implicitly: (−Φ_ref δ, −∇²Φ)."""
        return -self.ref_phi * state[:, 2], -self.lap * state[:, 0]

    # ---- time stepping ----

    def step(self, state: Tensor, history: list[Tensor], forcing: Tensor) -> Tensor:
        """One AB3 step with trapezoidal gravity waves; ``history`` holds the last explicit tendencies."""
        lin_phi, lin_div = self._linear(state)
        explicit = self.tendency(state, forcing)
        explicit[:, 0] -= lin_phi
        explicit[:, 2] -= lin_div
        history.insert(0, explicit)
        del history[3:]
        coeffs = {1: (1.0,), 2: (1.5, -0.5), 3: (23 / 12, -16 / 12, 5 / 12)}[len(history)]
        update = sum(c * h for c, h in zip(coeffs, history))
        new = state + self.dt * update
        a = 0.5 * self.dt
        r_phi = new[:, 0] + a * lin_phi
        r_div = new[:, 2] + a * lin_div
        k2 = -self.lap
        div = (r_div + a * k2 * r_phi) / (1 + a * a * k2 * self.ref_phi)
        new = torch.stack([r_phi - a * self.ref_phi * div, new[:, 1], div, new[:, 3]], dim=1)
        return new * self.damping

    def next_forcing(self, forcing: Tensor, generator: torch.Generator) -> Tensor:
        """AR(1) red noise in time, white over the spectral coefficients of the forcing band."""
        noise = torch.randn((*forcing.shape, 2), generator=generator, dtype=self.sh.dtype) * self.forcing_noise
        return self.forcing_decay * forcing + torch.view_as_complex(noise)

    # ---- initial state ----

    def balanced_phi(self, vrt: Tensor) -> Tensor:
        """Φ spectra in nonlinear balance with vorticity spectra ``vrt`` (no divergence), mean Φ̄."""
        vrt_div = torch.stack([vrt, torch.zeros_like(vrt)], dim=-3)
        uv = self.wind(vrt_div)
        vrt_grid = self.sh.isht(vrt)
        curl = self.vrt_div(uv * (vrt_grid + self.coriolis)[..., None, :, :])[..., 0, :, :]
        ke = self.sh.sht(0.5 * (uv**2).sum(-3))
        phi = self.invlap * curl - ke
        phi[..., 0, 0] = self.phi_eq[0, 0]  # the global mean of Φ_eq
        return phi * self.mask

    def initial_state(self, batch: int, generator: torch.Generator) -> Tensor:
        """Random vorticity at degrees 1..15 (about 15 m/s of wind), Φ balanced, δ = 0, θ = θ_eq."""
        lmax = self.sh.lmax
        deg = torch.arange(lmax)[:, None].expand(lmax, lmax)
        band = self.mask & (deg >= 1) & (deg <= 15)
        vrt = torch.randn((batch, lmax, lmax), generator=generator, dtype=self.sh.ctype) * band
        vrt[..., 0] = vrt[..., 0].real.to(vrt.dtype)
        uv = self.wind(torch.stack([vrt, torch.zeros_like(vrt)], dim=-3))
        vrt = vrt * (15.0 / uv.pow(2).sum(-3).mean().sqrt())
        state = torch.zeros((batch, 4, lmax, lmax), dtype=self.sh.ctype)
        state[:, 0] = self.balanced_phi(vrt)
        state[:, 1] = vrt
        state[:, 3] = self.theta_eq
        return state


def simulate_shallow_water(settings: ShallowWaterSettings = ShallowWaterSettings(), *,
                           progress: bool | str = True) -> xr.Dataset:
    """Run the simulation and return the Dataset ``z`` (m²/s²) and ``t`` (K) on (member, time, lat, lon).

    The members start from independent random states and see independent forcing; all share the nominal
    time axis (6-hourly from 2000-01-01 after the spin-up). Raises ``FloatingPointError`` if the state
    becomes non-finite (the settings are then unstable).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # its operations are too small to gain from more threads, and idle ones spin-wait
    try:
        return _simulate(settings, progress)
    finally:
        torch.set_num_threads(threads)


def _simulate(settings: ShallowWaterSettings, progress: bool | str) -> xr.Dataset:
    s = settings
    generator = torch.Generator().manual_seed(s.seed)
    model = ShallowWaterModel(s, getattr(torch, s.precision))
    state = model.initial_state(s.members, generator)
    forcing = torch.zeros_like(state[:, 1])
    history: list[Tensor] = []
    spinup_steps = round(s.spinup_days * 86400 / model.dt)
    fields = np.empty((2, s.members, s.outputs, len(OUTPUT_LAT), len(OUTPUT_LON)), np.float32)
    total = spinup_steps + s.outputs * s.steps_per_output
    started, cpu_started = _time.perf_counter(), _time.process_time()
    with progress_bar(total=total, enabled=bool(progress), desc=progress if isinstance(progress, str) else "shallow water",
              leave=False, unit="step", mininterval=1.0) as bar:
        for n in range(total):
            forcing = model.next_forcing(forcing, generator)
            state = model.step(state, history, forcing)
            done = n + 1 - spinup_steps
            if done > 0 and done % s.steps_per_output == 0:
                if not torch.isfinite(torch.view_as_real(state)).all():
                    raise FloatingPointError(f"the shallow-water state became non-finite after {(n + 1) * model.dt / 86400:.1f} "
                                             f"days; lower step_minutes or forcing ({s})")
                k = done // s.steps_per_output - 1
                grid = model.sh.evaluate(state[:, [0, 3]], OUTPUT_LAT, len(OUTPUT_LON))  # (members, 2, lat, lon)
                fields[:, :, k] = grid.transpose(0, 1).numpy()
            if n % 100 == 99:
                bar.update(100)
    times = pd.date_range(START, periods=s.outputs, freq=pd.Timedelta(hours=s.output_hours))
    dims = ("member", "time", "lat", "lon")
    ds = xr.Dataset({
        "z": (dims, fields[0], {"units": "m**2 s**-2", "long_name": "geopotential of the fluid surface (g h)"}),
        "t": (dims, fields[1], {"units": "K", "long_name": "temperature-like tracer"}),
    }, coords={"member": np.arange(s.members), "time": times, "lat": OUTPUT_LAT, "lon": OUTPUT_LON})
    ds.lat.attrs.update(units="degrees_north")
    ds.lon.attrs.update(units="degrees_east")
    ds.attrs.update(
        title="forced-dissipative shallow water on the sphere (racecar_core.data.shallow_water)",
        settings=_settings_json(s),
        generator_version=GENERATOR_VERSION,
        key=s.key(),
        generation_seconds=round(_time.perf_counter() - started, 2),
        generation_cpu_seconds=round(_time.process_time() - cpu_started, 2),
    )
    return ds


def _settings_json(settings: ShallowWaterSettings) -> str:
    return json.dumps(dataclasses.asdict(settings), sort_keys=True)


# --------------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------------


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$RACECAR_CACHE_DIR``, else ``~/.cache/racecar-book``."""
    if path is not None:
        return Path(path)
    env = os.environ.get("RACECAR_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "racecar-book"


def cache_path(settings: ShallowWaterSettings, directory: str | os.PathLike | None = None) -> Path:
    return cache_dir(directory) / "shallow_water" / f"shallow-water-{settings.key()}.nc"


def load_shallow_water(settings: ShallowWaterSettings = ShallowWaterSettings(), *,
                       cache: str | os.PathLike | None = None, progress: bool | str = True) -> xr.Dataset:
    """The simulated data set of ``settings``: read from the cache, or simulated and cached first.

    The file is keyed by the settings (their hash is the file name and they are stored in its
    attributes, checked on reading); it is written to a temporary name and renamed, so an interrupted
    run leaves no half-written file. The Dataset is loaded into memory.
    """
    path = cache_path(settings, cache)
    if path.exists():
        with xr.open_dataset(path) as ds:
            ds = ds.load()
        if ds.attrs.get("settings") != _settings_json(settings) or ds.attrs.get("generator_version") != GENERATOR_VERSION:
            raise ValueError(f"{path} holds a simulation with other settings than requested; delete it to regenerate")
        return ds
    ds = simulate_shallow_water(settings, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        ds.to_netcdf(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return ds


__all__ = [
    "OUTPUT_LAT",
    "OUTPUT_LON",
    "ShallowWaterModel",
    "ShallowWaterSettings",
    "cache_dir",
    "cache_path",
    "load_shallow_water",
    "simulate_shallow_water",
]
