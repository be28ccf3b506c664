"""Information planes on the 12-bit task: what each layer keeps about the input and the label.

The data and the network are our choice, after Shwartz-Ziv & Tishby (2017): the 4096 patterns of their 12-bit
task and their network 12 → 10 → 7 → 5 → 4 → 3 → 2 with tanh. The paper's own data (its figure shows
MNIST-like digits varied by digit, rotation and thickness) and network for its information planes are not known
to us. The network is trained on task A as Std, Ort, Pre, RR1 (RR¹), lRR and RR (RR¹: the input layer's term
of the reverse pass only; lRR: each layer's step from its own forward output; both our readings of the
paper's names), and each trained model is then fine-tuned with the task loss alone on task A again (stage AA)
and on task B (stage AB). Every stage records the information plane of every layer state
``d_1 = X, d_2, ..., d_6, d_7`` (the output layer, as softmax probabilities) on all 4096 inputs over training
(binning) and at its end (binning and the KDE upper bound).

The reverse-pass arms (RR¹, lRR, RR) are trained for every λ_RR of a grid (``lambda_grid`` and the headline
``lambda_rr``), the λ-independent arms (Std, Ort, Pre) once per seed, so the claims get a verdict at every λ
on the same seeds (:func:`claims_by_lambda`, :func:`claims`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import pickle
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import files, models, report
from .. import mi as estimators
from ..chapters import Chapter, Config, Param, ParameterError
from ..pretrain import pretrain_layerwise
from ..reverse import layer_activations
from ..static import progress_bar
from ..training import TrainConfig, TrainResult, seed_everything, train
from .grid import Variant, grid_and_headline, parse_lambdas


def validate(cfg: Config) -> None:
    """The λ grid must parse, and the headline λ must be > 0 (at 0 RR¹, lRR and RR would all be Std)."""
    parse_lambdas(cfg.lambda_grid, "lambda_grid")
    if cfg.lambda_rr <= 0:
        raise ParameterError(f"parameter 'lambda_rr' must be > 0 (the λ of the headline verdicts), got {cfg.lambda_rr}")


CHAPTER = Chapter(
    name="mi",
    title="Information planes: what each layer keeps",
    notebook="book/mi.ipynb",
    params=(
        Param("seeds", int, None, "number of seeds, 0 .. seeds-1", min=1, max=1000),
        Param("steps", int, None, "full-batch Adam steps on task A (stage A; the paper does not state it)",
              min=1, max=10_000_000),
        Param("finetune_steps", int, None, "full-batch Adam steps of each fine-tuning, task loss only (AA, AB)",
              min=1, max=10_000_000),
        Param("pretrain_steps", int, None, "Pre: Adam steps per hidden layer of greedy layer-wise pretraining",
              min=0, max=10_000_000),
        Param("lr", float, 1e-2, "Adam learning rate of every stage (ours: scripts/mi_settings.py)", min=1e-9, max=1.0),
        Param("lambda_rr", float, 0.03, "weight of the RR loss (per-element mean of each layer's term) for RR, lRR, RR1 "
              "behind the headline verdicts (ours: scripts/mi_settings.py)", min=0.0),
        Param("lambda_grid", str, None, "λ_RR values of the verdict map, comma-separated (lambda_rr is added)"),
        Param("lambda_ort", float, 0.1, "weight of the SRIP loss for Ort (the authors' value in their MNIST and peak code)",
              min=0.0),
        Param("snapshot_every", int, None, "steps between information-plane snapshots", min=1),
        Param("workers", int, None, "processes that train in parallel (the results do not depend on it)", min=1, max=256),
        Param("kde_seeds", int, None, "seeds 0 .. kde_seeds-1 also get KDE planes at the end of every stage",
              min=0, max=1000),
        Param("noise_variance", float, 1e-3, "KDE: variance of the Gaussian noise added to the activations", min=1e-12),
        Param("test_fraction", float, 0.2, "share of the 4096 patterns held out for testing", min=0.01, max=0.9),
        Param("split_seed", int, 0, "seed of the train/test split", min=0),
    ),
    presets={
        "smoke": {"seeds": 1, "steps": 20, "finetune_steps": 10, "pretrain_steps": 5, "snapshot_every": 10, "kde_seeds": 0,
                  "lambda_grid": "0.03,1", "workers": 1},
        # cpu: KDE planes for every seed. One end-of-stage KDE plane costs 0.19 s on one loaded core (1.5 s before
        # issue 13), so 5 seeds × 18 planes take about 17 s of the background thread, less than the former 1 seed (28 s).
        "cpu": {"seeds": 5, "steps": 500, "finetune_steps": 150, "pretrain_steps": 100, "snapshot_every": 50,
                "kde_seeds": 5, "lambda_grid": "0.03,0.3,1", "workers": 2},
        "paper": {"seeds": 10, "steps": 5000, "finetune_steps": 2000, "pretrain_steps": 1000, "snapshot_every": 100,
                  "kde_seeds": 10, "lambda_grid": "0.01,0.03,0.1,0.3,1,3", "workers": 4},
    },
    validate=validate,
)

WIDTHS = (12, 10, 7, 5, 4, 3, 2)
LAYERS = tuple(f"d{m}" for m in range(1, len(WIDTHS) + 1))  # d1 = X ... d7 = output layer
VARIANTS = ("Std", "Ort", "Pre", "RR1", "lRR", "RR")
BASELINES = ("Std", "Ort", "Pre")  # independent of λ_RR: trained once per seed and shared by every λ
RR_VARIANTS = ("RR1", "lRR", "RR")  # trained for every λ_RR of the map
STAGES = ("A", "AA", "AB")
STAGE_TASK = {"A": "a", "AA": "a", "AB": "b"}
STAGE_HELP = {"A": "trained on task A", "AA": "then fine-tuned on task A", "AB": "then fine-tuned on task B"}
ESTIMATORS = ("binning", "kde_upper")
BINNING = {"estimator": "binning", "bins": 30, "range": [-1.0, 1.0]}
DATA_NAME = "12-bit task (Shwartz-Ziv & Tishby), generated"
SETTINGS_FILE = "book/data/mi_settings.json"  # written by scripts/mi_settings.py
SEED_SHARE = 0.8  # a paired comparison "holds across seeds" if it holds for the means and in >= 80 % of the seeds


def lambda_values(cfg) -> list[float]:
    """The λ_RR of the verdict map, ascending: ``cfg.lambda_grid`` and the headline ``cfg.lambda_rr``."""
    return grid_and_headline(cfg.lambda_grid, cfg.lambda_rr)


# --------------------------------------------------------------------------------------------------
# Data and model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IB12Data:
    """The 4096 patterns, both labellings and one train/test split used by every stage and task."""

    patterns: np.ndarray  # uint8 [4096, 12]: the MI symbols of X
    x: Tensor  # float32 [4096, 12] with values 0 and 1: the network input
    labels: dict[str, np.ndarray]  # task ("a", "b") -> uint8 [4096]
    train_idx: np.ndarray
    test_idx: np.ndarray
    source: str = DATA_NAME

    def y(self, task: str) -> Tensor:
        return torch.as_tensor(self.labels[task].astype(np.int64))

    def train_set(self, task: str) -> tuple[Tensor, Tensor]:
        return self.x[self.train_idx], self.y(task)[self.train_idx]

    def label_entropy(self, task: str) -> float:
        """``H(Y)`` in bits over all 4096 patterns: the ceiling of ``I(d_m; Y)``."""
        return estimators.entropy(self.labels[task])

    @property
    def input_entropy(self) -> float:
        """``H(X) = log2 4096 = 12`` bits: the ceiling of ``I(X; d_m)``."""
        return estimators.entropy(self.patterns)


def load_data(cfg) -> IB12Data:
    """The generated 12-bit data set (:func:`racecar_core.data.ib12`) and a split stratified by task A's label.

    The same split serves both tasks, so no test pattern is ever trained on, in any stage.
    """
    from ..data import ib12, ib12_split

    patterns, y_a, y_b = ib12()
    train_idx, test_idx = ib12_split(cfg.test_fraction, seed=cfg.split_seed, task="a")
    return IB12Data(patterns, torch.as_tensor(patterns, dtype=torch.float32), {"a": y_a, "b": y_b}, train_idx, test_idx)


def load_settings(path: str | Path | None = None) -> dict:
    """The record of ``scripts/mi_settings.py`` (``book/data/mi_settings.json``): how lr and λ_RR were chosen."""
    from ..runs import REPO_ROOT

    path = Path(path) if path else REPO_ROOT / SETTINGS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `python scripts/mi_settings.py` to create it")
    return json.loads(path.read_text())


def make_model() -> nn.Sequential:
    """12 → 10 → 7 → 5 → 4 → 3 → 2, tanh after every layer but the last (logits), Glorot-uniform init."""
    return models.mlp(list(WIDTHS), "tanh")


@torch.no_grad()
def states_and_logits(model: nn.Module, x: Tensor) -> tuple[list[np.ndarray], Tensor]:
    """:func:`layer_states` and the logits of the output layer, from one forward pass in eval mode."""
    was_training = model.training
    model.eval()
    try:
        states = layer_activations(model, x)
    finally:
        model.train(was_training)
    logits = states[-1]
    states[-1] = torch.softmax(logits, dim=1)
    return [s.detach().cpu().numpy() for s in states], logits


def layer_states(model: nn.Module, x: Tensor) -> list[np.ndarray]:
    """The seven layer states ``[d_1, ..., d_7]`` as float arrays, in eval mode: ``d_1 = x``, ``d_2 .. d_6`` the
    tanh outputs and ``d_7`` the output layer as softmax probabilities (in [0, 1]) rather than logits."""
    return states_and_logits(model, x)[0]


def planes(states: Sequence[np.ndarray], data: IB12Data, task: str, estimator: str = "binning",
           noise_variance: float = 1e-3, input_point: np.ndarray | None = None) -> np.ndarray:
    """``[7, 2]``: ``(I(X; d_m), I(d_m; Y))`` in bits for every layer state, ``Y`` the labels of ``task``.

    Binning: 30 bins on [-1, 1] per unit (the softmax output uses the upper half, 15 bins). KDE: the upper
    bound with ``noise_variance``; ``input_point`` (the row of ``d_1 = X``, the same for every model) may be
    passed to skip recomputing it.
    """
    if estimator == "binning":
        return estimators.information_planes([list(states)], data.patterns, data.labels[task], "binning")[0]
    if estimator not in ("kde_upper", "kde_lower"):
        raise ValueError(f"estimator must be one of binning, kde_upper, kde_lower, got {estimator!r}")
    first = 1 if input_point is not None else 0
    out = estimators.information_planes([list(states[first:])], data.patterns, data.labels[task], estimator,
                                noise_variance=noise_variance)[0]
    return np.vstack([np.reshape(input_point, (1, 2)), out]) if input_point is not None else out


def snapshot(data: IB12Data, task: str):
    """Evaluation during a stage: accuracy on the train and test split of ``task``, the training cross-entropy
    and the binning plane."""
    y = data.y(task)
    train_idx = torch.as_tensor(data.train_idx)

    def evaluate(model: nn.Module) -> dict:
        states, logits = states_and_logits(model, data.x)
        correct = (logits.argmax(dim=1) == y).numpy()
        return {"train_acc": float(correct[data.train_idx].mean()), "test_acc": float(correct[data.test_idx].mean()),
                "train_ce": float(F.cross_entropy(logits[train_idx], y[train_idx])), "plane": planes(states, data, task)}

    return evaluate


def baseline_variants(cfg) -> list[Variant]:
    """Std, Ort (SRIP, ``cfg.lambda_ort``) and Pre (pretrained, then trained like Std): independent of λ_RR."""
    return [Variant("Std"), Variant("Ort", lambda_ort=cfg.lambda_ort), Variant("Pre")]


def rr_variants(lambda_rr: float) -> list[Variant]:
    """RR1 (RR¹), lRR and RR with weight ``lambda_rr``. RR¹ keeps only the input layer's term of the full
    reverse pass and lRR starts each layer's step from its own forward output: our readings of the paper's
    names (method.md, "What we inferred")."""
    return [Variant("RR1", lambda_rr=lambda_rr, rr_mode="first"),
            Variant("lRR", lambda_rr=lambda_rr, rr_mode="local"), Variant("RR", lambda_rr=lambda_rr)]


def variants(cfg, lambda_rr: float | None = None) -> list[Variant]:
    """The six arms at ``lambda_rr`` (default: the headline ``cfg.lambda_rr``), in :data:`VARIANTS` order."""
    return baseline_variants(cfg) + rr_variants(cfg.lambda_rr if lambda_rr is None else lambda_rr)


# --------------------------------------------------------------------------------------------------
# Pre: greedy layer-wise pretraining, cached in the run folder
# --------------------------------------------------------------------------------------------------


def pretrain(model: nn.Module, data: IB12Data, cfg, seed: int, run_dir: str | Path | None = None) -> pd.DataFrame:
    """Pretrain the five hidden layers of ``model`` in place (:func:`racecar_core.pretrain.pretrain_layerwise`
    on the training inputs, learning rate ``cfg.lr``); the output layer keeps its initialisation.

    With ``run_dir`` the pretrained weights and history are kept in ``run_dir/pretrain/seed<seed>.pt`` and
    reloaded when the settings match. Returns the history (``layer``, ``step``, ``loss``).
    """
    settings = {"steps_per_layer": cfg.pretrain_steps, "lr": cfg.lr, "layers": list(range(len(WIDTHS) - 2)),
                "reduction": "mean", "seed": seed, "split": [cfg.test_fraction, cfg.split_seed]}
    path = Path(run_dir) / "pretrain" / f"seed{seed}.pt" if run_dir else None
    if path is not None and path.exists():
        remedy = "Delete it; the pretraining is run again"
        saved = files.load_torch(path, remedy)
        try:
            if json.loads(saved["settings"]) == settings:
                model.load_state_dict(saved["state"])
                return pd.DataFrame(json.loads(saved["history"]))
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise files.DamagedFileError(path, f"it is not a pretraining record ({type(error).__name__}: {error})",
                                         remedy) from None
    x_train = data.x[data.train_idx]
    history = pretrain_layerwise(model, x_train, cfg.pretrain_steps, cfg.lr, layers=settings["layers"], reduction="mean")
    if path is not None:
        files.save_torch(path, {"settings": json.dumps(settings), "state": model.state_dict(),
                                "history": history.to_json(orient="records")})
    return history


# --------------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------------


@dataclass
class MIResults:
    """Everything the chapter draws: runs, final measures and planes per (stage, variant, seed)."""

    runs: dict[tuple[str, str, int], TrainResult] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    final_planes: dict[tuple[str, str, int, str], np.ndarray] = field(default_factory=dict)  # + estimator
    pretrain_history: dict[int, pd.DataFrame] = field(default_factory=dict)

    @property
    def frame(self) -> pd.DataFrame:
        """One row per (stage, variant, seed): accuracies and the binning plane (``IX_d1 .. IY_d7``)."""
        return pd.DataFrame(self.rows)

    def trajectory(self, stage: str, variant: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Steps ``[S]`` and binning planes ``[S, 7, 2]`` of one run over its stage."""
        snaps = self.runs[(stage, variant, seed)].snapshots
        return np.array([s for s, _ in snaps]), np.stack([np.asarray(d["plane"]) for _, d in snaps])

    def mean_trajectory(self, stage: str, variant: str) -> tuple[np.ndarray, np.ndarray]:
        """Steps and the binning planes averaged over the seeds ``[S, 7, 2]``."""
        seeds = sorted(s for (st, v, s) in self.runs if st == stage and v == variant)
        trajs = [self.trajectory(stage, variant, s) for s in seeds]
        return trajs[0][0], np.mean([t for _, t in trajs], axis=0)

    def pretrain_errors(self) -> pd.DataFrame:
        """Pre's autoencoder error of each pretrained layer before and after its own pretraining, mean over
        the seeds: one row per weight layer (index 0: ``W_1``, reconstructing ``d_1`` from ``d_2``)."""
        per_seed = [h.groupby("layer").loss.agg(before="first", after="last") for h in self.pretrain_history.values()]
        if not per_seed:
            raise KeyError("no pretraining in these results (Pre was not trained)")
        return pd.concat(per_seed).groupby(level=0).mean()

    def joined_history(self, variant: str, seed: int, stages: Sequence[str] = ("A", "AB")) -> pd.DataFrame:
        """The histories of ``stages`` one after the other, steps counted on from the end of the previous one."""
        parts, offset = [], 0
        for stage in stages:
            h = self.runs[(stage, variant, seed)].history
            parts.append(h.assign(step=h.step + offset, stage=stage))
            offset += int(h.step.max())
        return pd.concat(parts, ignore_index=True)

    def seeds_with(self, stage: str, variant: str, estimator: str) -> list[int]:
        """Seeds whose final plane of ``stage`` and ``variant`` was measured with ``estimator``."""
        return sorted(s for (st, v, s, e) in self.final_planes if (st, v, e) == (stage, variant, estimator))

    def mean_plane(self, stage: str, variant: str, estimator: str = "binning") -> np.ndarray:
        """The final plane ``[7, 2]`` averaged over the seeds that have it for ``estimator``."""
        seeds = self.seeds_with(stage, variant, estimator)
        if not seeds:
            raise KeyError(f"no {estimator} plane for stage {stage} and variant {variant}")
        return np.mean([self.final_planes[(stage, variant, s, estimator)] for s in seeds], axis=0)

    def steps(self, stage: str) -> list[int]:
        """The snapshot steps of ``stage`` (the same for every variant and seed)."""
        run = next(r for (st, _, _), r in self.runs.items() if st == stage)
        return [int(s) for s, _ in run.snapshots]

    def plane_at(self, stage: str, variant: str, step: int, estimator: str = "binning") -> np.ndarray | None:
        """The seed-mean plane ``[7, 2]`` of ``variant`` at snapshot ``step`` of ``stage``. Binning is measured at
        every snapshot, KDE at the end of the stage only: ``None`` where there is no measurement."""
        if estimator == "binning":
            steps, mean = self.mean_trajectory(stage, variant)
            hit = np.flatnonzero(steps == step)
            return mean[hit[0]] if hit.size else None
        if step != self.steps(stage)[-1] or not self.seeds_with(stage, variant, estimator):
            return None
        return self.mean_plane(stage, variant, estimator)

    def seed_planes(self, stage: str, variant: str, estimator: str = "binning") -> np.ndarray:
        """The final planes of every seed that has one for ``estimator``: ``[seeds, 7, 2]``."""
        return np.stack([self.final_planes[(stage, variant, s, estimator)]
                         for s in self.seeds_with(stage, variant, estimator)])

    def plane_frame(self, estimator: str = "binning") -> pd.DataFrame:
        """One row per (stage, variant, seed) with a final ``estimator`` plane: accuracies and ``IX_d1 .. IY_d7``."""
        acc = {(r["stage"], r["variant"], r["seed"]): r for r in self.rows}
        rows = []
        for (stage, variant, seed, est), plane in self.final_planes.items():
            if est != estimator:
                continue
            base = acc[(stage, variant, seed)]
            row = {k: base[k] for k in ("stage", "variant", "seed", "train_acc", "test_acc")}
            row.update({f"IX_{d}": plane[m, 0] for m, d in enumerate(LAYERS)})
            row.update({f"IY_{d}": plane[m, 1] for m, d in enumerate(LAYERS)})
            rows.append(row)
        return pd.DataFrame(rows)


def identity(cfg, data: IB12Data) -> dict:
    """What defines a run beyond its TrainConfig: model, data, split and the MI measured during training."""
    return {"model": "mlp 12-10-7-5-4-3-2 tanh, Glorot-uniform", "loss": "cross_entropy", "data": data.source,
            "split": {"test_fraction": cfg.test_fraction, "split_seed": cfg.split_seed, "stratified_by": "a"},
            "snapshot_mi": {**BINNING, "output": "softmax"}}


def _config_dict(config: TrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _cached_plane(path: Path | None, compute) -> np.ndarray:
    """``compute()``, or the plane saved at ``path`` by an earlier call (the run folder's model is the same)."""
    if path is not None and path.exists():
        return files.load_numpy(path, "Delete it; the plane is computed again")
    plane = compute()
    if path is not None:
        files.save_numpy(path, plane)
    return plane


@dataclass
class MIGrid:
    """The results at every λ_RR of the verdict map (:func:`run`).

    ``by_lambda[λ]`` is an :class:`MIResults` with all six arms: RR¹, lRR and RR trained with that λ, Std,
    Ort and Pre (which do not depend on λ) the same runs at every λ. ``lambda_rr`` is the headline λ.
    """

    lambda_rr: float
    by_lambda: dict[float, MIResults]

    @property
    def lambdas(self) -> list[float]:
        return sorted(self.by_lambda)

    @property
    def chosen(self) -> MIResults:
        """The results at the headline λ (the chapter's figures and its headline verdicts)."""
        return self.by_lambda[self.lambda_rr]

    def plane_frames(self, estimator: str = "binning") -> dict[float, pd.DataFrame]:
        """``{λ: plane_frame(estimator)}`` for every λ whose reverse-pass arms have ``estimator`` planes
        (the KDE bound: the headline λ only)."""
        out = {}
        for lam in self.lambdas:
            frame = self.by_lambda[lam].plane_frame(estimator)
            if not frame.empty and set(RR_VARIANTS) <= set(frame.variant):
                out[lam] = frame
        return out

    @property
    def frame(self) -> pd.DataFrame:
        """Every run once: the rows of :attr:`MIResults.frame` with a ``lambda_rr`` column (NaN for Std, Ort
        and Pre, which do not depend on it)."""
        def arms(frame: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
            return frame[frame.variant.isin(names)]

        parts = [arms(self.chosen.frame, BASELINES).assign(lambda_rr=np.nan)]
        parts += [arms(self.by_lambda[lam].frame, RR_VARIANTS).assign(lambda_rr=lam) for lam in self.lambdas]
        return pd.concat(parts, ignore_index=True)


def _measure(stage: str, name: str, seed: int, result: TrainResult, data: IB12Data) -> tuple[dict, np.ndarray, list]:
    """One finished stage: its row of final measures, its final binning plane ``[7, 2]`` and its final layer
    states (for the KDE bound)."""
    final = result.history.iloc[-1]
    plane = np.asarray(result.snapshots[-1][1]["plane"]).astype(float)  # a copy, not a view of the snapshot's tensor
    row = {"stage": stage, "variant": name, "seed": seed, "train_acc": float(final["train_acc"]),
           "test_acc": float(final["test_acc"]), "train_ce": float(final["train_ce"])}
    row.update({f"IX_{d}": plane[m, 0] for m, d in enumerate(LAYERS)})
    row.update({f"IY_{d}": plane[m, 1] for m, d in enumerate(LAYERS)})
    states = layer_states(result.model, data.x)
    if stage == "A":  # what the task-A model already holds about task B's label
        other = planes(states, data, "b")
        row.update({f"IYb_{d}": other[m, 1] for m, d in enumerate(LAYERS)})
    return row, plane, states


def _train_arm(cfg, data: IB12Data, variant: Variant, tag: str, seed: int, run_dir: str,
               threads: int | None) -> tuple[dict[str, TrainResult], dict[str, tuple], pd.DataFrame | None]:
    """Stages A, AA and AB of one arm and seed (Pre: after its pretraining), in this process or a worker.

    Returns the stages' results, :func:`_measure` of each stage and Pre's pretraining history (else ``None``).
    """
    if threads:
        torch.set_num_threads(threads)
    base = TrainConfig(steps=cfg.steps, lr=cfg.lr, rr_reduction="mean", eval_every=cfg.snapshot_every,
                       checkpoint_every=max(cfg.steps // 4, 1))
    fine = TrainConfig(steps=cfg.finetune_steps, lr=cfg.lr, eval_every=cfg.snapshot_every,
                       checkpoint_every=max(cfg.finetune_steps // 2, 1))
    ident = identity(cfg, data)
    seed_everything(seed)
    model = make_model()
    stage_ident = {"variant": variant.name, "stage": "A", "task": "a", **ident}
    history = None
    if variant.name == "Pre":
        history = pretrain(model, data, cfg, seed, run_dir)
        stage_ident["pretrain"] = {"steps_per_layer": cfg.pretrain_steps, "hidden_layers": len(WIDTHS) - 2}
    config_a = variant.config(base, seed)
    sub = lambda stage: Path(run_dir) / stage / f"{tag}-seed{seed}" if run_dir else None  # noqa: E731
    stages = {"A": train(model, data.train_set("a"), config_a, evaluate=snapshot(data, "a"),
                         run_dir=sub("A"), identity=stage_ident, progress=False)}
    for stage in ("AA", "AB"):
        task = STAGE_TASK[stage]
        tuned_ident = {"variant": variant.name, "stage": stage, "task": task, **ident,
                       "from": {"config": _config_dict(config_a), "identity": stage_ident}}
        stages[stage] = train(copy.deepcopy(stages["A"].model), data.train_set(task),
                              dataclasses.replace(fine, seed=seed), evaluate=snapshot(data, task),
                              run_dir=sub(stage), identity=tuned_ident, progress=False)
    measured = {stage: _measure(stage, variant.name, seed, result, data) for stage, result in stages.items()}
    return stages, measured, history


def _by_value(fn, *args) -> bytes:
    """``fn(*args)`` pickled by value in the worker. Returned as it is, its tensors would travel through
    torch's shared-memory reductions: one open file per tensor in the receiving process (thousands here),
    and a numpy view of a tensor would point at memory freed when the tensor moves."""
    return pickle.dumps(fn(*args), protocol=pickle.HIGHEST_PROTOCOL)


def _results_in_order(fn, jobs: Sequence[tuple], workers: int):
    """``fn(*job)`` for every job, yielded in the order of ``jobs``: in this process (``workers`` 1) or in
    ``workers`` spawned processes (a fresh interpreter each, so the results do not depend on ``workers``)."""
    if workers <= 1:
        for job in jobs:
            yield fn(*job)
        return
    import multiprocessing

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(_by_value, fn, *job) for job in jobs]
        for future in futures:
            yield pickle.loads(future.result())  # our own worker's bytes, never a file  # noqa: S301
    except BrokenProcessPool as error:
        raise RuntimeError(
            "a training worker process died before it finished. Workers are started with 'spawn', which "
            "re-imports the calling script: a script (not a notebook) that calls run() with workers > 1 must do "
            "so under `if __name__ == \"__main__\":`; or set workers to 1") from error
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run(cfg, data: IB12Data, *, run_dir: str = "", progress: bool = True, threads: int | None = 1) -> MIGrid:
    """Train every arm and seed through the stages A → AA and A → AB, at every λ_RR of the map, and measure
    the planes.

    Std, Ort and Pre are trained once per seed; RR¹, lRR and RR once per seed and λ of
    :func:`lambda_values` (the headline λ first, so its KDE planes are computed while the other λ train).
    Stage A: ``cfg.steps`` full-batch Adam steps on task A with the variant's regulariser (Pre: after
    :func:`pretrain`). AA and AB: a copy of the stage-A model, ``cfg.finetune_steps`` full-batch Adam steps
    (a fresh optimiser, learning rate ``cfg.lr``) on every layer with the cross-entropy of task A or B
    alone. Each stage is evaluated every ``cfg.snapshot_every`` steps (binning plane, accuracies); at the
    end of each stage, seeds ``< cfg.kde_seeds`` of Std, Ort, Pre and of the reverse-pass arms at the
    headline λ also get the KDE upper bound, computed in a background thread while training goes on.
    ``cfg.workers`` processes train arms in parallel; every arm starts from ``seed_everything(seed)``, so
    the results are the same for any number of workers. The workers are spawned: a script (not a notebook)
    that calls ``run`` with ``workers > 1`` needs the ``if __name__ == "__main__":`` guard.

    With ``run_dir`` every stage keeps its files in ``run_dir/<stage>/<arm>-seed<s>`` (reverse-pass arms:
    ``<arm>-lambda<λ>-seed<s>``), Pre's pretraining in ``run_dir/pretrain`` and the KDE planes in
    ``run_dir/kde``; a repeated call resumes unfinished stages and reloads finished ones. ``threads``: torch
    threads of each training process (1 is fastest for this tiny network; restored afterwards; ``None``
    leaves the setting alone).
    """
    chosen = float(cfg.lambda_rr)
    lams = lambda_values(cfg)
    grid = MIGrid(chosen, {lam: MIResults() for lam in lams})
    # (variant, λ or None for the λ-independent arms, seed): the headline λ right after the baselines
    arms = [(v, None, s) for v in baseline_variants(cfg) for s in range(cfg.seeds)]
    arms += [(v, lam, s) for lam in sorted(lams, key=lambda x: x != chosen) for v in rr_variants(lam)
             for s in range(cfg.seeds)]
    tags = [v.name if lam is None else f"{v.name}-lambda{lam:g}" for v, lam, _ in arms]
    jobs = [(cfg, data, v, tag, s, run_dir, threads) for (v, _, s), tag in zip(arms, tags)]
    kde_jobs: dict[tuple[str, str, int, float | None], Future] = {}  # (stage, variant, seed, λ or None)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    bar = progress_bar(total=len(jobs), desc="mi", enabled=progress, leave=False)
    try:
        with contextlib.ExitStack() as stack:
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))  # the KDE planes
            input_point = {task: pool.submit(_cached_plane, Path(run_dir) / "kde" / f"X-{task}-var{cfg.noise_variance:g}.npy"
                                             if run_dir else None,
                                             lambda t=task: planes([data.x.numpy()], data, t, "kde_upper",
                                                                   cfg.noise_variance)[0])
                           for task in ("a", "b")} if cfg.kde_seeds else {}
            done = stack.enter_context(contextlib.closing(_results_in_order(_train_arm, jobs, cfg.workers)))
            for (variant, lam, seed), tag, (stages, measured, history) in zip(arms, tags, done):
                bar.update()
                bar.set_postfix(run=f"{tag} seed {seed}")
                targets = list(grid.by_lambda.values()) if lam is None else [grid.by_lambda[lam]]
                for stage, result in stages.items():
                    row, plane, states = measured[stage]
                    for results in targets:
                        results.runs[(stage, variant.name, seed)] = result
                        results.final_planes[(stage, variant.name, seed, "binning")] = plane
                        results.rows.append(dict(row))
                        if history is not None:
                            results.pretrain_history[seed] = history
                    if seed < cfg.kde_seeds and lam in (None, chosen):
                        task = STAGE_TASK[stage]
                        cache = (Path(run_dir) / "kde" / f"{stage}-{tag}-seed{seed}-var{cfg.noise_variance:g}.npy"
                                 if run_dir else None)
                        kde_jobs[(stage, variant.name, seed, lam)] = pool.submit(
                            _cached_plane, cache, lambda s=states, t=task: planes(
                                s, data, t, "kde_upper", cfg.noise_variance, input_point[t].result()))
            bar.set_postfix(run="KDE planes")
            for (stage, name, seed, lam), job in kde_jobs.items():
                for results in (grid.by_lambda.values() if lam is None else [grid.by_lambda[lam]]):
                    results.final_planes[(stage, name, seed, "kde_upper")] = job.result()
    finally:
        bar.close()
        if threads:
            torch.set_num_threads(previous_threads)
    return grid


# --------------------------------------------------------------------------------------------------
# Measures behind the reproduction check
# --------------------------------------------------------------------------------------------------

HIDDEN_AND_OUTPUT = (2, 3, 4, 5, 6, 7)  # every layer but d_1 = X, which is the same point for every model
EARLY = (2, 3, 4)  # the first three hidden layers


def columns(axis: str, layers: Sequence[int]) -> list[str]:
    """Frame columns of ``axis`` ("IX" or "IY") for 1-based layer numbers ``layers``."""
    if axis not in ("IX", "IY", "IYb") or any(not 1 <= m <= len(LAYERS) for m in layers):
        raise ValueError(f"axis must be IX, IY or IYb and layers in 1..{len(LAYERS)}, got {axis!r}, {list(layers)}")
    return [f"{axis}_d{m}" for m in layers]


def normalised(frame: pd.DataFrame, h_x: float, h_y: dict[str, float]) -> pd.DataFrame:
    """A copy of ``frame`` with ``IX_*`` divided by ``H(X)`` and ``IY_*`` by the stage's ``H(Y)``: both in [0, 1]."""
    out = frame.copy()
    ix = [c for c in frame if c.startswith("IX_")]
    iy = [c for c in frame if c.startswith("IY_")]
    out[ix] = frame[ix] / h_x
    out[iy] = frame[iy].div(frame.stage.map(lambda s: h_y[STAGE_TASK[s]]), axis=0)
    return out


def _rows(frame: pd.DataFrame, stage: str, variant: str) -> pd.DataFrame:
    rows = frame[(frame.stage == stage) & (frame.variant == variant)].sort_values("seed")
    if rows.empty:
        raise KeyError(f"no runs of variant {variant!r} in stage {stage!r}")
    return rows


def seeds_of(frame: pd.DataFrame, stage: str, variant: str) -> list[int]:
    return [int(s) for s in _rows(frame, stage, variant).seed]


def column_mean(frame: pd.DataFrame, stage: str, variant: str, cols: Sequence[str]) -> np.ndarray:
    """Per seed (sorted): the mean of ``cols`` for one stage and variant, ``[seeds]``."""
    return _rows(frame, stage, variant)[list(cols)].to_numpy(dtype=float).mean(axis=1)


def centre_distance(norm: pd.DataFrame, stage: str, variant: str, layers: Sequence[int] = HIDDEN_AND_OUTPUT) -> np.ndarray:
    """Per seed: the mean over ``layers`` of the distance of the normalised point to the plane's centre (½, ½)."""
    rows = _rows(norm, stage, variant)
    ix = rows[columns("IX", layers)].to_numpy(dtype=float)
    iy = rows[columns("IY", layers)].to_numpy(dtype=float)
    return np.hypot(ix - 0.5, iy - 0.5).mean(axis=1)


def distance_to(norm: pd.DataFrame, stages: Sequence[str], variant: str, reference: str,
                layers: Sequence[int] = HIDDEN_AND_OUTPUT) -> np.ndarray:
    """Per seed: the mean over ``stages`` and ``layers`` of the distance between the normalised points of
    ``variant`` and ``reference`` of the same seed (same initial weights)."""
    out = []
    for stage in stages:
        a, b = _rows(norm, stage, variant), _rows(norm, stage, reference)
        if list(a.seed) != list(b.seed):
            raise ValueError(f"{variant} and {reference} need the same seeds, got {list(a.seed)} and {list(b.seed)}")
        dx = a[columns("IX", layers)].to_numpy(float) - b[columns("IX", layers)].to_numpy(float)
        dy = a[columns("IY", layers)].to_numpy(float) - b[columns("IY", layers)].to_numpy(float)
        out.append(np.hypot(dx, dy).mean(axis=1))
    return np.mean(out, axis=0)


def gap_to(frame: pd.DataFrame, stages: Sequence[str], variant: str, reference: str, column: str = "test_acc") -> np.ndarray:
    """Per seed: the mean over ``stages`` of ``|column(variant) - column(reference)|`` (same seed)."""
    return np.mean([np.abs(column_mean(frame, s, variant, [column]) - column_mean(frame, s, reference, [column]))
                    for s in stages], axis=0)


def claim_tests(frame: pd.DataFrame, h_x: float, h_y: dict[str, float]) -> dict[str, list[report.Comparison]]:
    """The quantitative tests of the chapter's five claims, fixed before looking at any result.

    ``frame``: :meth:`MIResults.plane_frame` (one estimator). Coordinates are normalised by their ceilings
    (``I(X; d)/H(X)``, ``I(d; Y)/H(Y)``); "layers" are ``d_2 .. d_7`` unless said otherwise.

    * ``centre``: stage A, RR's mean distance to the centre (½, ½) is lower than Std's, Ort's and Pre's.
    * ``output``: stage A, Std's and Ort's mean normalised ``I(d; Y)`` is higher than RR's.
    * ``pre_input``: stage A, Pre's mean normalised ``I(X; d)`` over ``d_2 .. d_4`` is higher than Std's,
      Ort's and RR's.
    * ``transfer``: in AA and in AB, RR's ``I(d_7; Y)`` and its test accuracy are higher than Std's, Ort's
      and Pre's.
    * ``local``: lRR is closer to RR than RR¹ is: the mean normalised distance to RR's points over the
      stages A, AA, AB, and the mean test-accuracy gap to RR over AA and AB.
    """
    norm = normalised(frame, h_x, h_y)
    iy = columns("IY", HIDDEN_AND_OUTPUT)
    tests: dict[str, list[report.Comparison]] = {
        "centre": [report.Comparison("distance to the centre", "RR", other, centre_distance(norm, "A", "RR"),
                              centre_distance(norm, "A", other), lower_is_better=True, min_share=SEED_SHARE)
                   for other in BASELINES],
        "output": [report.Comparison("normalised I(d;Y)", subject, "RR", column_mean(norm, "A", subject, iy),
                              column_mean(norm, "A", "RR", iy), min_share=SEED_SHARE) for subject in ("Std", "Ort")],
        "pre_input": [report.Comparison("normalised I(X;d), d2-d4", "Pre", other,
                                 column_mean(norm, "A", "Pre", columns("IX", EARLY)),
                                 column_mean(norm, "A", other, columns("IX", EARLY)), min_share=SEED_SHARE)
                      for other in ("Std", "Ort", "RR")],
        "transfer": [],
        "local": [
            report.Comparison("distance to RR's points (A, AA, AB)", "lRR", "RR1", distance_to(norm, STAGES, "lRR", "RR"),
                       distance_to(norm, STAGES, "RR1", "RR"), lower_is_better=True, min_share=SEED_SHARE),
            report.Comparison("test-accuracy gap to RR (AA, AB)", "lRR", "RR1", gap_to(frame, ("AA", "AB"), "lRR", "RR"),
                       gap_to(frame, ("AA", "AB"), "RR1", "RR"), lower_is_better=True, min_share=SEED_SHARE),
        ],
    }
    for stage in ("AA", "AB"):
        for label, col in (("I(d7;Y)", ["IY_d7"]), ("test accuracy", ["test_acc"])):
            tests["transfer"] += [report.Comparison(f"{stage} {label}", "RR", other, column_mean(frame, stage, "RR", col),
                                             column_mean(frame, stage, other, col), min_share=SEED_SHARE)
                                  for other in BASELINES]
    return tests


CLAIMS = {
    "centre": "Task A: all layers of RR lie in the centre of the plane (they keep information about input and output)",
    "output": "Task A: Std and Ort specialise on the output (large I(d_m; Y))",
    "pre_input": "Task A: Pre keeps a high I(X; d_m) in the early layers",
    "transfer": "After fine-tuning on A (AA) and on B (AB), RR's d_7 reaches the highest I(d_7; Y) and RR the "
                "highest accuracy (compared with Std, Ort, Pre)",
    "local": "lRR comes close to RR; RR¹ less so",
}
# The MI-plane figure's caption (as on the authors' group page) states the first three; "transfer" and "local"
# are our reading of panels whose captions we could not read in full, and RR¹ / lRR are our reading of the names.
SOURCES = {
    "centre": "MI-plane figure, panel b (caption)",
    "output": "MI-plane figure, panel b (caption)",
    "pre_input": "MI-plane figure, panel b (caption)",
    "transfer": "MI-plane figure, panels c, d (our reading; caption not verified)",
    "local": "our reading of the RR¹ / lRR results (not verified)",
}
TESTS = {
    "centre": "stage A: RR's mean distance of d2-d7 to the plane's centre below Std's, Ort's and Pre's",
    "output": "stage A: Std's and Ort's mean normalised I(d;Y) over d2-d7 above RR's",
    "pre_input": "stage A: Pre's mean normalised I(X;d) over d2-d4 above Std's, Ort's and RR's",
    "transfer": "AA and AB: RR's I(d7;Y) and test accuracy above Std's, Ort's and Pre's",
    "local": "lRR closer to RR than RR¹ in the plane (A, AA, AB) and in test accuracy (AA, AB)",
}


def setting(cfg, data_name: str, lambda_rr: float | None = None) -> report.Setting:
    """What the chapter's claims share (preset, seeds, data set and network, λ; default the headline λ)."""
    lam = cfg.lambda_rr if lambda_rr is None else lambda_rr
    data = f"{data_name}; data and 12-10-7-5-4-3-2 tanh network our choice, the paper's not known"
    return report.Setting("mi", cfg.preset, tuple(range(cfg.seeds)), data, report.format_lambda(lam))


def claims_at(binning: pd.DataFrame, kde: pd.DataFrame | None, h_x: float, h_y: dict[str, float],
              where: report.Setting) -> list[report.Claim]:
    """The five claims at one λ_RR (``where.lambda_rr``), judged on its binning planes
    (:meth:`MIResults.plane_frame`); the KDE upper bound's verdict on ``kde`` (seeds with KDE planes, or
    ``None``) is reported beside it in the test column.

    A comparison holds when it holds for the seed means and in at least ``SEED_SHARE`` of the seeds; a
    claim is reproduced when all its comparisons hold, partly when some do.
    """
    tests = claim_tests(binning, h_x, h_y)
    kde_tests = claim_tests(kde, h_x, h_y) if kde is not None and len(kde) else None
    out = []
    for key, text in CLAIMS.items():
        held = [c.holds for c in tests[key]]
        if kde_tests is None:
            kde_text = "no KDE planes at this λ"
        else:
            kde_held = [c.holds for c in kde_tests[key]]
            kde_text = (f"KDE upper bound ({len(kde.seed.unique())} seeds): {report.verdict_of(kde_held)}, "
                        f"{sum(kde_held)}/{len(kde_held)} comparisons hold")
        out.append(where.claim(
            key, text, source=SOURCES[key], measured=report.measured_text(tests[key]),
            verdict=report.verdict_of(held),
            test=f"{TESTS[key]}; each comparison for the means and in ≥ {SEED_SHARE:.0%} of the seeds. "
            f"Binning: {sum(held)}/{len(held)} comparisons hold; {kde_text}"))
    return out


def claims_by_lambda(binning: Mapping[float, pd.DataFrame], h_x: float, h_y: dict[str, float],
                     where: report.Setting) -> dict[float, list[report.Claim]]:
    """``{λ: claims_at(binning[λ], ...)}`` on the binning planes alone, the same seeds at every λ: the rows
    of the verdict map (:func:`racecar_core.report.verdict_map`)."""
    seeds = {lam: sorted(frame.seed.unique().tolist()) for lam, frame in binning.items()}
    if len({tuple(s) for s in seeds.values()}) > 1:
        raise ValueError(f"a verdict map needs the same seeds at every λ, got {seeds}")
    return {lam: claims_at(frame, None, h_x, h_y, dataclasses.replace(where, lambda_rr=report.format_lambda(lam)))
            for lam, frame in sorted(binning.items())}


def claims(binning: Mapping[float, pd.DataFrame], kde: pd.DataFrame | None, h_x: float, h_y: dict[str, float],
           where: report.Setting, lambda_rr: float) -> list[report.Claim]:
    """The headline claims: the verdicts at ``lambda_rr`` (the tuning rule's λ, a documented choice: see
    ``scripts/mi_settings.py``), each carrying its verdict at every λ of ``binning`` ({λ: plane frame}, which
    must include ``lambda_rr``) in ``across_lambda``. ``kde``: the KDE planes at ``lambda_rr`` (or ``None``)."""
    if lambda_rr not in binning:
        raise KeyError(f"the headline λ {lambda_rr:g} is not among the λ of the map {sorted(binning)}")
    by_lambda = claims_by_lambda(binning, h_x, h_y, where)
    headline = claims_at(binning[lambda_rr], kde, h_x, h_y,
                         dataclasses.replace(where, lambda_rr=report.format_lambda(lambda_rr)))
    return report.with_lambda_map(headline, by_lambda)


lambda_summary = report.lambda_summary  # where a claim holds across the map, in words


def arm_summary(frame: pd.DataFrame, h_x: float, h_y: dict[str, float], variant: str) -> dict[str, str]:
    """What one arm measures, mean ± sd over the seeds of a plane frame: stage-A training accuracy, test
    accuracy after A, AA and AB, and in stage A the distance of d2-d7 to the centre and their mean
    normalised I(X;d) and I(d;Y)."""
    norm = normalised(frame, h_x, h_y)
    row = {"train acc A": report.mean_sd(column_mean(frame, "A", variant, ["train_acc"]))}
    row.update({f"test acc {st}": report.mean_sd(column_mean(frame, st, variant, ["test_acc"])) for st in STAGES})
    row["distance to centre (A)"] = report.mean_sd(centre_distance(norm, "A", variant))
    row["I(X;d)/H(X) (A)"] = report.mean_sd(column_mean(norm, "A", variant, columns("IX", HIDDEN_AND_OUTPUT)))
    row["I(d;Y)/H(Y) (A)"] = report.mean_sd(column_mean(norm, "A", variant, columns("IY", HIDDEN_AND_OUTPUT)))
    return row


def rr_by_lambda(frames: Mapping[float, pd.DataFrame], h_x: float, h_y: dict[str, float], variant: str = "RR",
                 reference: str | None = "Std") -> pd.DataFrame:
    """:func:`arm_summary` of ``variant`` at every λ of ``frames`` ({λ: plane frame}), one row each, and a
    last row for ``reference`` (an arm that does not depend on λ): the quantities behind the verdict map."""
    rows = {f"{variant}, λ {report.format_lambda(lam)}": arm_summary(frame, h_x, h_y, variant)
            for lam, frame in sorted(frames.items())}
    if reference is not None and frames:
        rows[reference] = arm_summary(next(iter(frames.values())), h_x, h_y, reference)
    return pd.DataFrame.from_dict(rows, orient="index")
