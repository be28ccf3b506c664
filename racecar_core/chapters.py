"""Chapter parameters and presets: one specification used by the notebooks, the CLI and papermill.

Each parameter is listed once, in its chapter's :class:`Chapter` spec. The notebook's first cell (tagged
``parameters``, which papermill overrides) is generated from the spec (:meth:`Chapter.parameters_cell`;
``scripts/sync_notebooks.py`` writes it, a test checks it), and the notebook reads every parameter back
with ``CHAPTER.configure_from(globals())``, so no name can be left out. A value of ``None`` means "the
preset's value". Values are merged and validated before any work starts, so a bad value fails in
seconds, not after training.

The registry of chapters is :mod:`racecar_core.experiments`; this module knows nothing of it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRESETS = ("smoke", "cpu", "paper")
INT_MAX = 2**31 - 1  # the bound of an int parameter without its own max (seeds: torch and numpy take 32-bit values)
PRESET_HELP = {
    "smoke": "seconds; for tests",
    "cpu": "the default: minutes on a 2-core laptop",
    "paper": "the paper's scale, the authors' settings where known (each chapter says which); meant for a GPU",
}


class ParameterError(ValueError):
    """A chapter parameter is unknown, of the wrong type or out of range."""


class MissingDataError(ParameterError):
    """The parameters are valid, but the data set they name is not on this machine (the message says how to get it)."""


@dataclass(frozen=True)
class Param:
    """One chapter parameter: its type, its default (``None``: the preset's value) and its valid range."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    folder: bool = False  # a non-empty value must be an existing folder

    def parse(self, text: str) -> Any:
        """Convert a command-line string to this parameter's type (``none`` gives the preset's value)."""
        if text.strip().lower() == "none":
            return None
        try:
            if self.type is bool:
                lowered = text.strip().lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                return lowered in ("true", "1", "yes")
            return self.type(text)
        except ValueError:
            raise ParameterError(f"parameter {self.name!r} expects {self.type.__name__}, got {text!r}") from None

    def check(self, value: Any) -> Any:
        """Return ``value`` (ints widened to float for float parameters) or raise :class:`ParameterError`."""
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise ParameterError(f"parameter {self.name!r} expects {self.type.__name__}, got {value!r} ({type(value).__name__})")
        if self.type is float and not math.isfinite(value):
            raise ParameterError(f"parameter {self.name!r} must be finite, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"parameter {self.name!r} must be one of {list(self.choices)}, got {value!r}")
        if self.min is not None and value < self.min:
            raise ParameterError(f"parameter {self.name!r} must be >= {self.min}, got {value!r}")
        upper = self.max if self.max is not None or self.type is not int else INT_MAX
        if upper is not None and value > upper:
            raise ParameterError(f"parameter {self.name!r} must be <= {upper}, got {value!r}")
        if self.folder and value:
            self._check_folder(value)
        return value

    def _check_folder(self, value: str) -> None:
        try:
            folder = Path(value).expanduser()
        except RuntimeError as error:  # ~user of an unknown user
            raise MissingDataError(f"parameter {self.name!r}: cannot expand {value!r} ({error}). {self.help}") from None
        if folder.is_file():
            raise MissingDataError(f"parameter {self.name!r}: {value!r} is a file; give the folder that holds the data. "
                                   f"{self.help}")
        if not folder.is_dir():
            raise MissingDataError(f"parameter {self.name!r}: folder {value!r} does not exist. {self.help}")


class Config(dict):
    """Resolved chapter parameters; keys are also attributes (``cfg.steps``). ``run_dir`` (from
    :meth:`Chapter.configure_from`) is an attribute only, so it is neither shown nor saved as a parameter."""

    run_dir: str = ""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class Chapter:
    """A chapter: its notebook, its parameters and the values each preset gives them."""

    name: str
    title: str
    notebook: str  # path relative to the repository root
    params: tuple[Param, ...]
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    validate: Callable[[Config], None] | None = None  # checks across parameters (raise ParameterError)

    def __post_init__(self):
        names = {p.name for p in self.params}
        for preset in PRESETS:
            if preset not in self.presets:
                raise ValueError(f"chapter {self.name}: preset {preset!r} missing")
            unknown = set(self.presets[preset]) - names
            if unknown:
                raise ValueError(f"chapter {self.name}: preset {preset!r} sets unknown parameters {sorted(unknown)}")
        for p in self.params:
            if p.default is None and any(p.name not in self.presets[k] for k in PRESETS):
                raise ValueError(f"chapter {self.name}: {p.name} defaults to None but not every preset sets it")
            if p.default is not None and any(p.name in self.presets[k] for k in PRESETS):
                raise ValueError(f"chapter {self.name}: a preset sets {p.name}, so its default must be None "
                                 f"(the notebook's value would otherwise override the preset)")
        reserved = {"preset", "run_dir"} & names
        if reserved:
            raise ValueError(f"chapter {self.name}: {sorted(reserved)} are set by every chapter, not as parameters")

    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ParameterError(
            f"chapter {self.name!r} has no parameter {name!r}; its parameters are: "
            + ", ".join(["preset", "run_dir", *self.param_names])
        )

    def configure(self, preset: str = "cpu", **values: Any) -> Config:
        """Merge ``values`` (``None``: keep the preset's) over the preset and the defaults, and validate."""
        if preset not in PRESETS:
            raise ParameterError(f"preset must be one of {list(PRESETS)}, got {preset!r}")
        for name in values:
            self.param(name)
        resolved: dict[str, Any] = {"preset": preset}
        for p in self.params:
            value = values.get(p.name)
            if value is None:
                value = self.presets[preset].get(p.name, p.default)
            resolved[p.name] = p.check(value)
        config = Config(resolved)
        if self.validate is not None:
            self.validate(config)
        return config

    def configure_from(self, namespace: Mapping[str, Any]) -> Config:
        """:meth:`configure` with ``preset`` and every parameter read from ``namespace`` (a notebook's
        ``globals()`` after its parameters cell); names it lacks take the preset's value. The result also holds
        ``run_dir``, resolved by :func:`racecar_core.runs.resolve_run_dir` (relative to the repository root)."""
        from .runs import resolve_run_dir

        values = {p.name: namespace[p.name] for p in self.params if p.name in namespace}
        config = self.configure(namespace.get("preset", "cpu"), **values)
        config.run_dir = resolve_run_dir(namespace.get("run_dir", ""))  # an attribute: not a parameter, not shown
        return config

    def parameters_cell(self) -> str:
        """The source of the notebook's ``parameters`` cell, generated from this spec."""
        lines = [
            "# Parameters: set by papermill and `racecar run -p NAME VALUE`; None means the preset's value.",
            f"# Generated from the chapter's spec (racecar_core/experiments/{self.name}.py): "
            "python scripts/sync_notebooks.py",
            "from typing import Optional",
            "",
            f'preset: str = "cpu"  # {" | ".join(PRESETS)}',
        ]
        for p in self.params:
            kind = p.type.__name__
            annotation = f"Optional[{kind}]" if p.default is None else kind  # papermill's parser reads no `int | None`
            presets = ", ".join(f"{k}: {self.presets[k][p.name]!r}" for k in PRESETS if p.name in self.presets[k])
            default = json.dumps(p.default) if isinstance(p.default, str) else repr(p.default)
            lines.append(f"{p.name}: {annotation} = {default}  # {p.help}" + (f" ({presets})" if presets else ""))
        lines.append('run_dir: str = ""  # folder for checkpoints and metrics.json (racecar run sets it); "": nowhere')
        return "\n".join(lines)

    def notebook_path(self, root: str | Path | None = None) -> Path:
        from .runs import REPO_ROOT

        return Path(root or REPO_ROOT) / self.notebook
