"""Provenance of results: which code, parameters, seeds and machine produced a metrics file."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__

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
    """Write ``data`` as indented JSON atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(data), indent=1, allow_nan=True) + "\n")
    os.replace(tmp, path)
    return path


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
    """Write ``metrics.json`` into ``run_dir`` (nothing when ``run_dir`` is empty). Returns the path."""
    if not run_dir:
        return None
    return write_json(Path(run_dir) / "metrics.json", metrics_record(chapter, params, results))


def load_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """Read a metrics file written by :func:`save_metrics` (a file or the run directory holding it)."""
    path = Path(path)
    return json.loads((path / "metrics.json" if path.is_dir() else path).read_text())
