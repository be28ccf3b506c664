"""Building the HTML book: every chapter is executed once, the way ``racecar run`` executes it (papermill into a
run folder with its ``metrics.json``), the scorecard page is computed from those runs, and jupyter-book renders
the executed notebooks without executing anything again.

    runs/book/<chapter>/          the chapter's run folder: trainings, executed notebook, metrics.json
    _build/src/                   the staged book sources (executed notebooks in place of the blank ones)
    _build/html/                  the rendered book
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from .runs import REPO_ROOT, code_version, load_metrics

BOOK_RUNS = REPO_ROOT / "runs" / "book"
STAGE = REPO_ROOT / "_build" / "src"
SCORECARD = "book/scorecard.ipynb"
EXECUTE_MODES = ("cache", "force", "off")


def is_current(run_dir: Path, chapter_name: str, preset: str) -> bool:
    """Whether ``run_dir`` holds a finished run of ``chapter_name`` with ``preset`` from the current, clean
    commit (then ``cache`` mode reuses it instead of executing the notebook again)."""
    notebook, metrics = run_dir / f"{chapter_name}.ipynb", run_dir / "metrics.json"
    if not (notebook.is_file() and metrics.is_file()):
        return False
    record, now = load_metrics(metrics), code_version()
    return (record["params"].get("preset") == preset and now["git_commit"] is not None and not now["git_dirty"]
            and record["code"]["git_commit"] == now["git_commit"] and not record["code"]["git_dirty"])


def execute_chapters(preset: str = "cpu", execute: str = "cache", progress: bool = True, jobs: int = 1) -> dict[str, Path]:
    """Run every chapter into ``runs/book/<chapter>`` and return the executed notebooks by chapter.

    ``force`` deletes each chapter's book run first (nothing is reused), ``cache`` reuses a run of the
    current commit and otherwise re-executes the notebook (finished trainings in the run folder are loaded,
    not repeated), ``off`` executes nothing and uses what is there. ``jobs``: chapters executed at once, each
    as a ``racecar run`` process with ``cores // jobs`` PyTorch threads (its output goes to
    ``runs/book/<chapter>.log``); 1 runs them one after the other in this process.
    """
    from .experiments import chapters

    if execute not in EXECUTE_MODES:
        raise ValueError(f"execute must be one of {EXECUTE_MODES}, got {execute!r}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    todo = []
    for name in chapters():
        out = BOOK_RUNS / name
        if execute == "force" and out.exists():
            shutil.rmtree(out)
        if execute == "cache" and is_current(out, name, preset) or execute == "off":
            print(f"racecar book: {name}: using {out}", flush=True)
        else:
            todo.append(name)
    failed = _run_all(todo, preset, progress, jobs)
    if failed:
        raise RuntimeError(f"chapters failed: {', '.join(failed)} (see runs/book/<chapter>.log or the output above)")
    return {name: BOOK_RUNS / name / f"{name}.ipynb" for name in chapters()
            if (BOOK_RUNS / name / f"{name}.ipynb").is_file()}


def _run_all(names: list[str], preset: str, progress: bool, jobs: int) -> list[str]:
    """Execute the chapters ``names``; returns those that failed. Prints each chapter's wall time."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from .cli import run_chapter
    from .experiments import get_chapter

    def one(name: str) -> bool:
        start = time.perf_counter()
        print(f"racecar book: {name}: executing ({preset} preset)", flush=True)
        if jobs == 1:
            try:
                run_chapter(get_chapter(name), preset, {}, BOOK_RUNS / name, progress=progress)
                ok = True
            except Exception as error:  # the failed notebook is kept as failed-<chapter>.ipynb
                print(f"racecar book: {name}: {type(error).__name__}: {error}", flush=True)
                ok = False
        else:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
            command = [sys.executable, "-m", "racecar_core.cli", "run", name, "--preset", preset,
                       "--out", str(BOOK_RUNS / name), "--no-progress"]
            BOOK_RUNS.mkdir(parents=True, exist_ok=True)
            with open(BOOK_RUNS / f"{name}.log", "w") as log:
                ok = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT) == 0
            if not ok:
                print((BOOK_RUNS / f"{name}.log").read_text(errors="replace")[-3000:], flush=True)
        print(f"racecar book: {name}: {'finished' if ok else 'FAILED'} in {time.perf_counter() - start:.0f} s", flush=True)
        return ok

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = dict(zip(names, pool.map(one, names)))
    if names:
        print(f"racecar book: {len(names)} chapters executed in {time.perf_counter() - start:.0f} s ({jobs} at a time)",
              flush=True)
    return [name for name, ok in results.items() if not ok]


def stage_sources(executed: dict[str, Path]) -> Path:
    """Copy the book's sources into ``_build/src`` with each executed notebook in place of the blank one, and
    execute the scorecard page on ``runs/book``. Returns the staged root."""
    import papermill

    if STAGE.exists():
        shutil.rmtree(STAGE)
    STAGE.mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "book", STAGE / "book", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy2(REPO_ROOT / "_toc.yml", STAGE / "_toc.yml")
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    (STAGE / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    for name, notebook in executed.items():
        _without_injected_parameters(notebook, STAGE / "book" / f"{name}.ipynb")
    papermill.execute_notebook(str(REPO_ROOT / SCORECARD), str(STAGE / SCORECARD), parameters={"runs_dir": str(BOOK_RUNS)},
                               cwd=str(REPO_ROOT / "book"), progress_bar=False, kernel_name="python3")
    return STAGE


def _without_injected_parameters(source: Path, target: Path) -> None:
    """Copy an executed notebook, hiding the cell papermill injected (machine-specific paths); the values it set
    are in the run's metrics.json and the chapter prints its resolved configuration."""
    import nbformat

    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(nb, target)


def build(preset: str = "cpu", execute: str = "cache", progress: bool = True, jobs: int = 1) -> int:
    """Execute the chapters, stage the sources and render ``_build/html`` (warnings are errors). Returns the
    exit status of ``jupyter-book build`` (1 if a chapter failed)."""
    try:
        executed = execute_chapters(preset, execute, progress, jobs)
    except RuntimeError as error:
        print(f"racecar book: {error}", file=sys.stderr)
        return 1
    stage = stage_sources(executed)
    jb = Path(sys.executable).with_name("jupyter-book")
    command = [str(jb) if jb.exists() else "jupyter-book", "build", str(stage), "--path-output", str(REPO_ROOT),
               "-W", "-n", "--keep-going"]
    status = subprocess.call(command, cwd=REPO_ROOT)
    if status == 0:
        print(f"racecar: book built: {REPO_ROOT / '_build' / 'html' / 'index.html'}")
    return status
