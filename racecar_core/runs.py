"""Provenance of results: which code, parameters, seeds and machine produced a metrics file."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, files

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent


def code_version() -> dict[str, Any]:
    """Package version plus, in a git checkout, the commit and whether the tree had local changes."""
    info: dict[str, Any] = {"package": __version__, "git_commit": None, "git_dirty": None}
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True,
                                  check=True, timeout=10).stdout.strip()

        info["git_commit"] = git("rev-parse", "HEAD")
        info["git_dirty"] = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def environment() -> dict[str, Any]:
    """Python, torch and numpy versions and the compute device."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "device": device, "torch_threads": torch.get_num_threads()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` (numpy and torch values converted) as indented JSON atomically (:mod:`racecar_core.files`)."""
    return files.write_json(path, _jsonable(data))


def resolve_run_dir(run_dir: str | os.PathLike | None) -> str:
    """The absolute run folder of a chapter's ``run_dir`` parameter; ``""`` stays ``""`` (no files).

    One rule, whatever the current directory (``racecar run``, or papermill started anywhere): an absolute
    path (or ``~/...``) is used as given; a relative one is relative to the repository root and must stay
    inside it (``..`` escaping the repository is refused: give an absolute path to write elsewhere). The
    check is on the path as written, so ``runs/`` may be a symbolic link to another disk.
    """
    from .chapters import ParameterError

    if run_dir is None or str(run_dir) == "":
        return ""
    text = str(run_dir)
    path = Path(os.path.expanduser(text))
    if text.startswith("~") and str(path).startswith("~"):
        raise ParameterError(f"run_dir {text!r}: no such user's home folder; give an absolute path or one "
                             "relative to the repository root")
    if path.is_absolute():
        return os.path.normpath(path)
    resolved = Path(os.path.normpath(REPO_ROOT / path))
    if resolved != REPO_ROOT and REPO_ROOT not in resolved.parents:
        raise ParameterError(
            f"run_dir {text!r} leads to {resolved}, outside the repository {REPO_ROOT}: a relative run_dir is "
            "taken relative to the repository root and must stay inside it; give an absolute path to write elsewhere"
        )
    if resolved == REPO_ROOT:
        raise ParameterError(f"run_dir {text!r} is the repository root itself; name a folder inside it, e.g. runs/NAME")
    return str(resolved)


def metrics_record(chapter: str, params: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """A metrics record: the results with the parameters, code version, environment and time beside them."""
    return {
        "chapter": chapter,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "params": params,
        "code": code_version(),
        "environment": environment(),
        "results": results,
    }


def save_metrics(run_dir: str | os.PathLike, chapter: str, params: dict[str, Any], results: dict[str, Any]) -> Path | None:
    """Write ``metrics.json`` into ``run_dir`` (resolved by :func:`resolve_run_dir`; nothing when it is
    empty). Returns the path."""
    run_dir = resolve_run_dir(run_dir)
    if not run_dir:
        return None
    return write_json(Path(run_dir) / "metrics.json", metrics_record(chapter, params, results))


def load_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """Read a metrics file written by :func:`save_metrics` (a file or the run directory holding it).

    A damaged file raises :class:`racecar_core.files.DamagedFileError`; a missing one FileNotFoundError.
    """
    path = Path(path)
    path = path / "metrics.json" if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"no metrics file at {path}; run the chapter (racecar run CHAPTER) to write one")
    record = files.load_json(path, "Delete it and run the chapter again (racecar run CHAPTER with the same "
                                   "settings) to write it anew; finished trainings in its folder are reused")
    if "results" not in record or "params" not in record:
        raise files.DamagedFileError(path, "it is not a metrics record (no 'params' or 'results')",
                                     "Delete it and run the chapter again to write it anew")
    return record
