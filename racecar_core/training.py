"""One training loop for every chapter.

``train`` runs a fixed number of optimisation steps, evaluates every ``eval_every`` steps, writes the
history of every loss term and metric, checkpoints into ``run_dir`` and resumes from it with no step
lost (the result equals an uninterrupted run). A non-finite loss stops the run with a message.

What one step computes is an :class:`Objective`. The default, :class:`Supervised`, is the paper's
task loss + λ_rr·RR loss + λ_ort·SRIP with one optimiser; other objectives (a GAN's two alternating
updates, layer-wise pretraining) plug into the same loop and keep its checkpoints, exact resume,
NaN stop, history and progress bar.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .batches import BatchSource, TensorBatches, epoch_generator
from .files import DamagedFileError, load_json, load_torch, read_csv, save_torch, write_text
from .losses import cross_entropy, srip_loss
from .reverse import MODES, REDUCTIONS, Reduction, reconstruction_loss, record, reverse
from .runlock import RunLock
from .static import progress_bar

LossFn = Callable[[Tensor, Tensor], Tensor]
Evaluate = Callable[[nn.Module], Mapping[str, Any]]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; ``step`` is the 0-based optimisation step whose loss it was."""

    def __init__(self, message: str, step: int | None = None):
        super().__init__(message)
        self.step = step


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. ``steps`` counts optimiser updates (one batch each).

    Learning rate: ``warmup_lr`` for the first ``warmup_steps`` steps, then ``lr``, multiplied by
    ``lr_gamma`` at each fraction of ``steps`` in ``lr_milestones`` (e.g. ``(0.5, 0.75)``).
    """

    steps: int
    lr: float = 1e-4
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's moment decay rates
    lambda_rr: float = 0.0
    rr_mode: Literal["full", "first", "local"] = "full"
    rr_reduction: Reduction = "sum"  # per-layer scale of the RR terms, see reconstruction_loss
    lambda_rr_warmup: int = 0  # steps over which λ_rr rises linearly from 0 to lambda_rr (0: constant)
    update_bn_stats: bool = False  # the reverse pass also updates BatchNorm running statistics (authors' code)
    lambda_ort: float = 0.0
    grad_clip: float = 0.0  # clip each optimiser's gradient to this global L2 norm before its update (0: off)
    lr_milestones: tuple[float, ...] = ()
    lr_gamma: float = 0.1
    warmup_steps: int = 0
    warmup_lr: float = 0.0
    eval_every: int = 100
    checkpoint_every: int = 1000
    seed: int = 0
    amp: bool = False  # bf16 autocast for the forward and reverse passes (CUDA only; ignored on the CPU)
    channels_last: bool = False  # NHWC memory format for 4-D inputs and conv weights

    def __post_init__(self):
        _check(isinstance(self.steps, int) and self.steps >= 1, f"steps must be an int >= 1, got {self.steps!r}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(self.optimizer in ("adam", "sgd"), f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        _check(self.lambda_rr >= 0 and self.lambda_ort >= 0, "lambda_rr and lambda_ort must be >= 0")
        _check(self.rr_mode in MODES, f"rr_mode must be one of {MODES}, got {self.rr_mode!r}")
        _check(self.rr_reduction in REDUCTIONS, f"rr_reduction must be one of {REDUCTIONS}, got {self.rr_reduction!r}")
        _check(all(0 < m < 1 for m in self.lr_milestones), "lr_milestones are fractions of steps in (0, 1)")
        _check(self.eval_every >= 1 and self.checkpoint_every >= 1, "eval_every and checkpoint_every must be >= 1")
        _check(0 <= self.warmup_steps < self.steps, "warmup_steps must be in [0, steps)")
        _check(self.lambda_rr_warmup >= 0, f"lambda_rr_warmup must be >= 0, got {self.lambda_rr_warmup}")
        _check(self.grad_clip >= 0, f"grad_clip must be >= 0 (0: off), got {self.grad_clip}")
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
               f"betas must be two numbers in [0, 1), got {self.betas}")
        object.__setattr__(self, "lr_milestones", tuple(float(m) for m in self.lr_milestones))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))

    def lr_at(self, step: int) -> float:
        """Learning rate of optimisation step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.warmup_lr
        drops = sum(step >= round(m * self.steps) for m in self.lr_milestones)
        return self.lr * self.lr_gamma**drops

    def lambda_rr_at(self, step: int) -> float:
        """Weight of the RR loss in optimisation step ``step`` (0-based), after the linear warm-up."""
        if self.lambda_rr_warmup and step < self.lambda_rr_warmup:
            return self.lambda_rr * (step + 1) / self.lambda_rr_warmup
        return self.lambda_rr


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class TrainResult:
    """What a run produced: the trained model, its history and the non-scalar evaluation outputs."""

    model: nn.Module
    history: pd.DataFrame
    snapshots: list[tuple[int, dict[str, Tensor]]] = field(default_factory=list)
    resumed_from: int = 0

    def final(self, column: str) -> float:
        """Last logged value of a history column."""
        return float(self.history[column].dropna().iloc[-1])


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``: the first CUDA GPU if there is one, else the CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) and numpy's legacy global generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or SGD over ``params`` with ``config``'s settings; fused (one kernel) where the parameters allow it."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters to optimise")
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay, fused=fused)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, fused=fused)


def _raise_non_finite(step: int, terms: Mapping[str, Tensor], update: str | None = None) -> None:
    values = ", ".join(f"{k}={float(torch.as_tensor(v).detach()):.4g}" for k, v in terms.items())
    where = f" in the {update!r} update" if update else ""
    raise NonFiniteLossError(
        f"non-finite loss at step {step}{where} ({values}); lower the learning rate or the loss weights "
        f"(lambda_rr scales with the squared input range), or check the data for NaNs", step=step
    )


# --------------------------------------------------------------------------------------------------
# Objectives: what one optimisation step computes
# --------------------------------------------------------------------------------------------------


class StepContext:
    """Handed to :meth:`Objective.step`: the step number, the config and :meth:`update`, which applies one
    optimiser's update (NaN check, zero_grad, backward, gradient clipping, step)."""

    def __init__(self, loop: _Loop):
        self._loop = loop
        self.step: int = loop.completed  # 0-based index of this optimisation step
        self.config: TrainConfig = loop.config

    def update(self, name: str, loss: Tensor, terms: Mapping[str, Tensor] | None = None) -> None:
        """Back-propagate ``loss`` and step optimiser ``name``; a non-finite ``loss`` stops the run before any
        weight changes, reporting ``terms`` (the step's loss terms so far)."""
        if not torch.isfinite(loss):
            _raise_non_finite(self.step, dict(terms) if terms else {name: loss.detach()}, update=name)
        optimizer = self._loop.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self._loop.updating = True  # from the first update on, an interrupted step would leave mixed weights
        optimizer.step()


class Objective:
    """What one optimisation step computes. The loop owns data, schedules, checkpoints and logs.

    Override :meth:`step` (and :meth:`optimizers` for several parameter sets, e.g. a GAN's generator and
    discriminator). Objectives are stateful only through :meth:`state_dict`, which goes into checkpoints.
    """

    def setup(self, model: nn.Module, config: TrainConfig, device: torch.device) -> None:
        """Called once before training (and before a checkpoint is loaded): create generators, buffers."""

    def optimizers(self, model: nn.Module, config: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        """One optimiser per name; :meth:`StepContext.update` steps them by name. Default: all of ``model``."""
        return {"model": make_optimizer(model.parameters(), config)}

    def step(self, model: nn.Module, batch: tuple[Tensor, ...], ctx: StepContext) -> dict[str, Tensor]:
        """Compute the losses of ``batch``, call ``ctx.update`` for each optimiser, return the loss terms to log
        (scalar tensors; the loop averages them between history rows)."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Supervised(Objective):
    """The paper's objective: ``loss_fn(model(x), y) + λ_rr·RR + λ_ort·SRIP`` with one optimiser.

    Logged terms: ``task``, ``rr`` (unweighted), ``ort`` (unweighted) and ``loss`` (the weighted sum).
    """

    def __init__(self, loss_fn: LossFn = cross_entropy):
        self.loss_fn = loss_fn

    def setup(self, model: nn.Module, config: TrainConfig, device: torch.device) -> None:
        self.srip_generator = torch.Generator(device=device).manual_seed(config.seed + 7919)

    def terms(self, model: nn.Module, x: Tensor, y: Tensor, config: TrainConfig, step: int) -> dict[str, Tensor]:
        """The loss terms of one batch (model in training mode)."""
        lambda_rr = config.lambda_rr_at(step)
        with parametrize.cached():
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.amp and x.is_cuda):
                output, tape = record(model, x)
                terms = {"task": self.loss_fn(output.float(), y)}
                if config.lambda_rr:
                    pairs = reverse(tape, config.rr_mode, update_bn_stats=config.update_bn_stats)
                    terms["rr"] = reconstruction_loss(pairs, config.rr_reduction).float()
            if config.lambda_ort:
                terms["ort"] = srip_loss(model, self.srip_generator)
        terms["loss"] = terms["task"] + lambda_rr * terms.get("rr", 0.0) + config.lambda_ort * terms.get("ort", 0.0)
        return terms

    def step(self, model: nn.Module, batch: tuple[Tensor, ...], ctx: StepContext) -> dict[str, Tensor]:
        x, y = batch
        terms = self.terms(model, x, y, ctx.config, ctx.step)
        ctx.update("model", terms["loss"], terms)
        return terms

    def state_dict(self) -> dict:
        return {"srip": self.srip_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.srip_generator.set_state(state["srip"])


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------


def _config_dict(config: TrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))


_CHECKPOINT_KEYS = ("step", "model", "optimizers", "objective", "rng", "history", "snapshots", "window", "window_count")


class _Run:
    """Files of one training run: ``checkpoint.pt`` while running; ``model.pt``, ``history.csv``,
    ``snapshots.pt`` and ``config.json`` once finished; ``racecar.lock`` while a process uses the folder."""

    def __init__(self, run_dir: str | os.PathLike | None, config: TrainConfig, identity: Mapping[str, Any] | None):
        self.dir = Path(run_dir) if run_dir else None
        self.steps = config.steps
        self.config = {**_config_dict(config), **({"identity": json.loads(json.dumps(dict(identity)))} if identity else {})}
        self.lock = RunLock(self.dir) if self.dir else contextlib.nullcontext()

    @property
    def restart_remedy(self) -> str:
        return ("Rerun with restart=True (racecar run: --restart) to discard it and train this run again from "
                "step 0, or delete it")

    @property
    def final_remedy(self) -> str:
        return (f"Delete the run folder {self.dir} (or its model.pt, history.csv and snapshots.pt) to train this "
                "run again")

    def open(self, restart: bool) -> None:
        """Check that the folder belongs to this configuration and record it; with ``restart`` an unfinished
        run's checkpoint (and its configuration) is discarded first. Call with the lock held."""
        if not self.dir:
            return
        saved = self.dir / "config.json"
        checkpoint = self.dir / "checkpoint.pt"
        if restart and not self.finished:
            if checkpoint.exists():
                warnings.warn(f"restart=True: discarding the unfinished run's checkpoint {checkpoint}; "
                              "training starts again from step 0", stacklevel=3)
            checkpoint.unlink(missing_ok=True)
        elif saved.exists():
            remedy = (f"Delete it if {self.dir} belongs to these settings (it is written again), or choose "
                      "another run folder" + ("" if self.finished else "; restart=True (racecar run: --restart) "
                                              "discards the unfinished run in it"))
            if load_json(saved, remedy) != self.config:
                raise ValueError(
                    f"{self.dir} holds a run with a different configuration ({saved}); "
                    f"choose another run directory or delete this one"
                )
        write_text(saved, json.dumps(self.config, indent=1))

    @property
    def finished(self) -> bool:
        return bool(self.dir) and (self.dir / "model.pt").exists() and (self.dir / "history.csv").exists()

    def load_checkpoint(self) -> dict | None:
        path = self.dir / "checkpoint.pt" if self.dir else None
        if path is None or not path.exists():
            return None
        state = load_torch(path, self.restart_remedy)
        missing = [k for k in _CHECKPOINT_KEYS if k not in state] if isinstance(state, dict) else list(_CHECKPOINT_KEYS)
        if missing:
            raise DamagedFileError(path, f"it is not a training checkpoint (no {', '.join(missing)})", self.restart_remedy)
        return state

    def save_checkpoint(self, state: dict) -> None:
        if self.dir:
            save_torch(self.dir / "checkpoint.pt", state)

    def save_final(self, model: nn.Module, history: pd.DataFrame, snapshots: list) -> None:
        if not self.dir:
            return
        save_torch(self.dir / "snapshots.pt", snapshots)
        write_text(self.dir / "history.csv", history.to_csv(index=False))
        save_torch(self.dir / "model.pt", model.state_dict())
        (self.dir / "checkpoint.pt").unlink(missing_ok=True)

    def load_final(self, model: nn.Module) -> TrainResult:
        remedy = self.final_remedy
        weights = load_torch(self.dir / "model.pt", remedy)
        with _fits(self.dir / "model.pt", remedy, "the model"):
            model.load_state_dict(weights)
        history = read_csv(self.dir / "history.csv", remedy, numeric=("step",))
        if history.empty or history.step.iloc[-1] != self.steps:
            raise DamagedFileError(self.dir / "history.csv", f"it does not end at step {self.steps}, where the run "
                                   "finished", remedy)
        snapshots = load_torch(self.dir / "snapshots.pt", remedy)
        with _fits(self.dir / "snapshots.pt", remedy, "a list of (step, values) pairs"):
            snapshots = [(int(s), dict(d)) for s, d in snapshots]
        return TrainResult(model, history, snapshots, resumed_from=len(history))


@contextlib.contextmanager
def _fits(path: Path, remedy: str, what: str):
    """Report contents that load but do not fit (wrong keys, shapes or structure) as a damaged ``path``."""
    try:
        yield
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as error:
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise DamagedFileError(path, f"its contents do not fit {what} ({type(error).__name__}: {first})", remedy) from None


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


def _as_source(data: BatchSource | tuple[Tensor, Tensor], seed: int) -> BatchSource:
    if isinstance(data, tuple):
        return TensorBatches(*data, batch_size=None, seed=seed)
    if not isinstance(data, BatchSource):
        raise TypeError("data must be (x, y) tensors or an object with batches(epoch) and __len__")
    return data


def _to_device(batch: tuple[Tensor, ...], device: torch.device, channels_last: bool = False) -> tuple[Tensor, ...]:
    """The batch's tensors on ``device``; 4-D ones in channels-last layout if asked."""
    moved = tuple(t.to(device, non_blocking=True) for t in batch)
    if channels_last:
        moved = tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in moved)
    return moved


def _split_evaluation(values: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, Tensor]]:
    scalars, arrays = {}, {}
    for key, value in values.items():
        if isinstance(value, (int, float)) or (hasattr(value, "ndim") and value.ndim == 0):
            scalars[key] = float(value)
        else:
            arrays[key] = torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value).detach().cpu()
    return scalars, arrays


def _evaluate(model: nn.Module, evaluate: Evaluate | None) -> tuple[dict[str, float], dict[str, Tensor]]:
    if evaluate is None:
        return {}, {}
    was_training = model.training
    model.eval()
    try:
        return _split_evaluation(evaluate(model))
    finally:
        model.train(was_training)


def train(model: nn.Module, data: BatchSource | tuple[Tensor, Tensor], config: TrainConfig, *,
          loss_fn: LossFn | None = None, objective: Objective | None = None, evaluate: Evaluate | None = None,
          run_dir: str | os.PathLike | None = None, identity: Mapping[str, Any] | None = None,
          device: str | torch.device | None = "auto", progress: bool | str = True,
          restart: bool = False) -> TrainResult:
    """Train ``model`` on ``data`` for ``config.steps`` steps and return a :class:`TrainResult`.

    ``data``: ``(x, y)`` tensors (one full batch per step) or a :class:`BatchSource`.
    ``objective``: what a step computes (default :class:`Supervised` with ``loss_fn``, cross-entropy if
    not given); give one or the other.
    ``evaluate(model) -> {name: value}`` runs in eval mode (with its own RNG stream, so it never changes
    the training trajectory) at step 0, every ``eval_every`` steps and at the end; scalars go into the
    history, arrays into ``snapshots``.
    ``run_dir``: if given, checkpoints, the history (CSV) and the final weights go there; a finished
    run is loaded instead of retrained and an interrupted one (crash, Ctrl-C) resumes from its last
    checkpoint; a Ctrl-C also checkpoints the last completed step. While the run uses the folder it holds
    its lock (:class:`racecar_core.runlock.RunLock`): a second run into the same folder is refused. Damaged
    files in it raise :class:`racecar_core.files.DamagedFileError` saying what to do.
    ``restart``: discard an unfinished run's checkpoint in ``run_dir`` and train from step 0 (a finished
    run is still loaded).
    The returned model is in eval mode.
    ``identity``: JSON-able settings outside ``config`` that define the run (model, loss, data); a
    ``run_dir`` holding a run with another config or identity is refused.
    """
    if objective is not None and loss_fn is not None:
        raise TypeError("give loss_fn or objective, not both (Supervised(loss_fn) is the default objective)")
    objective = objective if objective is not None else Supervised(loss_fn or cross_entropy)
    device = pick_device(device)
    source = _as_source(data, config.seed)
    run = _Run(run_dir, config, identity)
    with run.lock:
        run.open(restart)
        return _train(model, source, config, run, objective, evaluate, device, progress)


def _train(model: nn.Module, source: BatchSource, config: TrainConfig, run: _Run, objective: Objective,
           evaluate: Evaluate | None, device: torch.device, progress: bool | str) -> TrainResult:
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    if run.finished:
        result = run.load_final(model)
        model.to(device).eval()
        return result
    loop = _Loop(model, config, objective, evaluate, device)
    state = run.load_checkpoint()
    if state is not None:
        with _fits(run.dir / "checkpoint.pt", run.restart_remedy, "this model and optimiser"):
            loop.load_state_dict(state)
    if loop.log_due():  # step 0, or an interruption between an update and its history row
        loop.evaluate_and_log()
    start = loop.completed
    bar = progress_bar(total=config.steps, initial=start, enabled=bool(progress),
                       desc=progress if isinstance(progress, str) else None, leave=False)
    try:
        for batch in _batch_stream(source, start, config.steps):
            loop.step(_to_device(batch, device, config.channels_last))
            bar.update(1)
            if loop.log_due():
                row = loop.evaluate_and_log()
                if "loss" in row:
                    bar.set_postfix(loss=f"{row['loss']:.4g}")
            if loop.completed % config.checkpoint_every == 0 and loop.completed < config.steps:
                run.save_checkpoint(loop.state_dict())
    except KeyboardInterrupt:
        if not loop.updating:  # an update cut in half would leave inconsistent weights: keep the last checkpoint
            run.save_checkpoint(loop.state_dict())
        raise
    finally:
        bar.close()
    history = pd.DataFrame(loop.history)
    run.save_final(model, history, loop.snapshots)
    model.eval()
    return TrainResult(model, history, loop.snapshots, resumed_from=start)


def _batch_stream(source: BatchSource, start: int, steps: int):
    """Batches of steps ``start .. steps-1``; epoch ``e`` is ``source.batches(e)``."""
    per_epoch = len(source)
    epoch, index = divmod(start, per_epoch)
    step = start
    while step < steps:
        batches = source.batches(epoch)
        for _ in range(index):  # resume in the middle of an epoch
            next(batches)
        for batch in batches:
            yield batch
            step += 1
            if step == steps:
                return
        epoch, index = epoch + 1, 0


class _Loop:
    """Training state between steps: model, objective, optimisers, RNG streams, history and the log window."""

    def __init__(self, model: nn.Module, config: TrainConfig, objective: Objective, evaluate: Evaluate | None,
                 device: torch.device):
        self.model, self.config, self.objective, self.evaluate, self.device = model, config, objective, evaluate, device
        objective.setup(model, config, device)
        self.optimizers = objective.optimizers(model, config)
        for optimizer in self.optimizers.values():  # schedules scale each group's own learning rate
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        self.history: list[dict[str, float]] = []
        self.snapshots: list[tuple[int, dict[str, Tensor]]] = []
        self.window: dict[str, float | Tensor] = {}
        self.window_count = 0
        self.completed = 0
        self.updating = False
        self.rng = self._rng_state()

    def step(self, batch: tuple[Tensor, ...]) -> None:
        """One optimisation step on ``batch`` (the objective may update several optimisers)."""
        self.model.train()
        scale = self.config.lr_at(self.completed) / self.config.lr
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * scale
        terms = self.objective.step(self.model, batch, StepContext(self))
        self.completed += 1
        self.updating = False
        self.rng = self._rng_state()
        for key, value in terms.items():
            self.window[key] = self.window.get(key, 0.0) + value.detach()
        self.window_count += 1

    def log_due(self) -> bool:
        """Whether the current step should get a history row that it does not have yet."""
        due = self.completed == 0 or self.completed % self.config.eval_every == 0 or self.completed == self.config.steps
        return due and not (self.history and self.history[-1]["step"] == self.completed)

    def evaluate_and_log(self) -> dict[str, float]:
        """Append a history row: mean loss terms since the last row, then the evaluation scalars."""
        row: dict[str, float] = {"step": self.completed}
        if self.window_count:
            row["lr"] = self.config.lr_at(self.completed - 1)
            row.update({k: float(v) / self.window_count for k, v in self.window.items()})
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            scalars, arrays = _evaluate(self.model, self.evaluate)
        row.update(scalars)
        self.history.append(row)
        if arrays:
            self.snapshots.append((self.completed, arrays))
        self.window, self.window_count = {}, 0
        return row

    def _rng_state(self) -> dict[str, Tensor]:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return rng

    def state_dict(self) -> dict:
        """Everything needed to continue after ``completed`` steps exactly as an uninterrupted run."""
        return {"step": self.completed, "model": self.model.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "objective": self.objective.state_dict(), "rng": self.rng, "history": self.history,
                "snapshots": self.snapshots, "window": {k: float(v) for k, v in self.window.items()},
                "window_count": self.window_count}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.objective.load_state_dict(state["objective"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.rng = state["rng"]
        self.history = list(state["history"])
        self.snapshots = [(int(s), d) for s, d in state["snapshots"]]
        self.window, self.window_count = dict(state["window"]), int(state["window_count"])
        self.completed = int(state["step"])


__all__ = [
    "NonFiniteLossError",
    "Objective",
    "StepContext",
    "Supervised",
    "TensorBatches",
    "TrainConfig",
    "TrainResult",
    "epoch_generator",
    "make_optimizer",
    "pick_device",
    "seed_everything",
    "train",
]
