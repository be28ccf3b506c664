"""The ``racecar`` command: run one chapter with papermill, or build the book.

    racecar list
    racecar run CHAPTER [--preset P] [-p NAME VALUE]... [--out DIR]
    racecar book [--execute cache|force|off] [--preset P]
    racecar scorecard [RUNS_DIR] [--csv FILE]
    racecar sweep CHAPTER [-p NAME v1,v2,...]... [--preset P] [--seeds N] [--workers N | --scheduler ADDRESS]

Every parameter is checked before anything runs; a failed or interrupted run leaves its training
checkpoints (to resume by running the same command again) and its partly executed notebook as
``failed-<chapter>.ipynb`` in the run folder, but no ``<chapter>.ipynb`` or metrics file. A Ctrl-C
reaches the notebook's kernel, so the running training checkpoints before the command exits (status 130).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .chapters import PRESET_HELP, PRESETS, Chapter, ParameterError
from .experiments import chapters, get_chapter
from .runlock import LOCK_NAME, RunLock
from .runs import REPO_ROOT
from .static import STATIC_ENV

RESERVED = ("preset", "run_dir")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="racecar", description="Run the chapters of the racecar reproduction book.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the chapters, their parameters and presets")
    run = sub.add_parser("run", help="execute one chapter notebook with papermill into runs/")
    run.add_argument("chapter", help="chapter name (see 'racecar list')")
    run.add_argument("--preset", default="cpu", help=f"one of {', '.join(PRESETS)} (default: cpu)")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME VALUE",
                     help="set a chapter parameter (-p NAME VALUE or -p NAME=VALUE); repeatable")
    run.add_argument("--out", help="run directory (default: runs/CHAPTER/PRESET[-NAME=VALUE...])")
    run.add_argument("--no-progress", action="store_true", help="do not stream the notebook's output")
    run.add_argument("--restart", action="store_true",
                     help="discard the unfinished trainings' checkpoints in the run folder (finished trainings are kept)")
    run.add_argument("--cell-timeout", type=int, default=None, metavar="SECONDS",
                     help="fail a notebook cell that runs longer than this (default: no limit)")
    book = sub.add_parser("book", help="execute every chapter into runs/book and build the HTML book into _build/html")
    book.add_argument("--execute", choices=("cache", "force", "off"), default="cache",
                      help="cache (default): re-execute a chapter unless runs/book holds a run of this commit; "
                           "force: delete the book's runs and execute everything; off: render what is there")
    book.add_argument("--preset", default="cpu", help=f"preset of every chapter, one of {', '.join(PRESETS)} (default: cpu)")
    book.add_argument("--jobs", type=int, default=1,
                      help="chapters executed at once, each with cores/jobs PyTorch threads (default: 1)")
    sweep = sub.add_parser("sweep", help="run a chapter for every point of a parameter grid, as tasks on Dask")
    sweep.add_argument("chapter", help="chapter name (see 'racecar list')")
    sweep.add_argument("-p", "--param", action="append", default=[], metavar="NAME v1,v2,...",
                       help="a swept parameter and its comma-separated values; repeatable (the grid is their product)")
    sweep.add_argument("--preset", default="cpu", help=f"one of {', '.join(PRESETS)} (default: cpu)")
    sweep.add_argument("--seeds", type=int, help="the chapter's seeds parameter for every point")
    cluster = sweep.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=int, default=2, help="processes of a local Dask cluster (default: 2)")
    cluster.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786")
    sweep.add_argument("--name", help="sweep folder name under runs/sweeps/ (default: CHAPTER-PRESET-PARAMS)")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    card = sub.add_parser("scorecard", help="every claim of every run under a folder, as one table")
    card.add_argument("runs_dir", nargs="?", default=str(REPO_ROOT / "runs"), help="folder of runs (default: runs/)")
    card.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    return parser


def join_param_pairs(argv: list[str]) -> list[str]:
    """Rewrite ``-p NAME VALUE`` as ``--param=NAME=VALUE`` before argparse sees it, so that values such as
    ``-1e-5`` or ``-inf`` reach the range check instead of being taken for options."""
    out, i = [], 0
    while i < len(argv):
        pair = argv[i] in ("-p", "--param") and i + 2 < len(argv) and "=" not in argv[i + 1]
        if pair and not argv[i + 2].startswith("--"):  # a value, not the next option (-p steps --out DIR)
            out.append(f"--param={argv[i + 1]}={argv[i + 2]}")
            i += 3
        else:
            out.append(argv[i])
            i += 1
    return out


def parse_params(chapter: Chapter, texts: list[str]) -> dict[str, Any]:
    """``["NAME=VALUE", ...]`` from the command line → typed values; unknown names and bad values raise."""
    values: dict[str, Any] = {}
    for text in texts:
        name, sep, text = text.partition("=")
        if not sep:
            raise ParameterError(f"-p needs a name and a value (-p NAME VALUE), got {name!r}")
        if name in RESERVED:
            raise ParameterError(f"set {name!r} with --{'preset' if name == 'preset' else 'out'}, not -p")
        values[name] = chapter.param(name).parse(text)
    return values


def default_run_dir(chapter: Chapter, preset: str, values: dict[str, Any]) -> Path:
    """``runs/<chapter>/<preset>[-name=value...]``, naming only the values that differ from the preset's: the
    same settings always map to the same folder (``-p steps none`` or the default value name no new one)."""
    resolved, preset_values = chapter.configure(preset, **values), chapter.configure(preset)
    parts = [preset] + [f"{k}={resolved[k]}" for k in sorted(values) if resolved[k] != preset_values[k]]
    name = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", "-".join(parts))
    return REPO_ROOT / "runs" / chapter.name / name


class _KernelInterrupt:
    """Passes a Ctrl-C on to the notebook's kernel.

    jupyter_client starts kernels in their own session, so a terminal's Ctrl-C (SIGINT to the foreground
    process group) reaches only this process. While a chapter runs, SIGINT here interrupts the kernel
    instead, as Jupyter's interrupt button does (SIGINT to the kernel's process group, what
    ``KernelManager.interrupt_kernel`` sends to an IPython kernel): the training loop checkpoints and
    re-raises, the cell fails, and :func:`run_chapter` raises KeyboardInterrupt. No further cell starts. A
    second Ctrl-C, or one before the kernel has started, stops this process at once.
    """

    class Stop(Exception):
        """Raised before the next cell once an interrupt was passed on."""

    def __init__(self):
        self.km = None
        self.interrupted = False

    def kernel_manager_class(self) -> type:
        """A kernel manager class for papermill whose instances register here (so SIGINT can reach them)."""
        from jupyter_client import AsyncKernelManager

        owner = self

        class RegisteringKernelManager(AsyncKernelManager):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                owner.km = self

        return RegisteringKernelManager

    def before_cell(self, **_) -> None:
        if self.interrupted:
            raise self.Stop("interrupted")

    def on_sigint(self, signum, frame) -> None:
        km = self.km
        if self.interrupted or km is None or not km.has_kernel:
            raise KeyboardInterrupt
        self.interrupted = True
        print("\nracecar: interrupting the notebook; a running training saves its checkpoint "
              "(press Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
        provisioner = km.provisioner
        try:
            if getattr(provisioner, "pgid", None) and hasattr(os, "killpg"):
                os.killpg(provisioner.pgid, signal.SIGINT)
            else:
                os.kill(provisioner.pid, signal.SIGINT)
        except (ProcessLookupError, PermissionError, AttributeError, TypeError):
            pass  # the kernel is already gone: papermill reports it

    @contextlib.contextmanager
    def installed(self):
        """Handle SIGINT while the block runs (only possible in the main thread; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self.on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def discard_checkpoints(out: Path) -> list[Path]:
    """Delete every unfinished training's ``checkpoint.pt`` under ``out`` (``racecar run --restart``)."""
    found = sorted(out.rglob("checkpoint.pt")) if out.is_dir() else []
    for path in found:
        path.unlink()
    return found


def run_chapter(chapter: Chapter, preset: str, values: dict[str, Any], out: Path, progress: bool = True,
                cell_timeout: int | None = None, restart: bool = False) -> Path:
    """Execute the chapter notebook into ``out``; returns the executed notebook's path. ``cell_timeout``:
    seconds a cell may run before the run fails (None: no limit).

    ``out`` is locked while the chapter runs (a second run into it is refused). The notebook is written
    as it executes to ``out/<chapter>.running.ipynb``; on success it becomes ``out/<chapter>.ipynb``, on a
    failure or an interrupt ``out/failed-<chapter>.ipynb`` (replaced by the next failure, removed by the
    next success). A Ctrl-C is passed on to the kernel (see :class:`_KernelInterrupt`) and ends in
    KeyboardInterrupt once the kernel has stopped. ``restart``: first discard the unfinished trainings'
    checkpoints (:func:`discard_checkpoints`), so they train again from step 0.
    """
    created = not out.exists()
    final = out / f"{chapter.name}.ipynb"
    running = out / f"{chapter.name}.running.ipynb"
    failed = out / f"failed-{chapter.name}.ipynb"
    params = {"preset": preset, "run_dir": str(out.resolve()), **values}
    interrupt = _KernelInterrupt()
    try:
        with RunLock(out):  # refuses a second run into out before touching anything in it
            if restart:
                for path in discard_checkpoints(out):
                    print(f"racecar: --restart: discarded {path}", file=sys.stderr)
            try:
                _execute(chapter, params, running, progress, cell_timeout, interrupt)
            except BaseException:
                if running.exists():
                    os.replace(running, failed)
                    print(f"racecar: chapter {chapter.name!r} "
                          f"{'was interrupted' if interrupt.interrupted else 'failed'}; the executed notebook is "
                          f"kept at {failed}", file=sys.stderr)
                if any(p.name not in (LOCK_NAME, failed.name) for p in out.iterdir()):
                    print(f"racecar: finished trainings and checkpoints in {out} are reused when you run the same "
                          "command again", file=sys.stderr)
                raise
            os.replace(running, final)
            failed.unlink(missing_ok=True)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        if interrupt.interrupted:
            raise KeyboardInterrupt from None
        raise
    return final


def _execute(chapter: Chapter, params: dict[str, Any], output: Path, progress: bool, cell_timeout: int | None,
             interrupt: _KernelInterrupt) -> None:
    import papermill

    with interrupt.installed():
        papermill.execute_notebook(str(chapter.notebook_path()), str(output), parameters=params,
                                   cwd=str(chapter.notebook_path().parent), log_output=progress,
                                   progress_bar=False, kernel_name="python3", execution_timeout=cell_timeout,
                                   kernel_manager_class=interrupt.kernel_manager_class(),
                                   on_cell_execute=interrupt.before_cell)


def sweep_chapter(args: argparse.Namespace) -> int:
    """``racecar sweep``: check the whole grid, run it on Dask, print where the summary is; 1 if a point failed."""
    from . import sweep

    try:
        if args.workers < 1:
            raise ParameterError(f"--workers must be >= 1, got {args.workers}")
        chapter = get_chapter(args.chapter)
        grid = sweep.parse_grid(chapter, args.param)
        if args.seeds is not None:
            if "seeds" in grid:
                raise ParameterError("give the seeds with --seeds or with -p seeds, not both")
            grid["seeds"] = [str(args.seeds)]
        if args.preset not in PRESETS:
            raise ParameterError(f"preset must be one of {list(PRESETS)}, got {args.preset!r}")
        sweep.expand(chapter, args.preset, grid)  # every point validated before any work
    except (ParameterError, FileNotFoundError) as error:
        print(f"racecar: error: {error}", file=sys.stderr)
        return 2
    try:
        frame, folder = sweep.run_sweep(chapter, args.preset, grid, workers=args.workers, scheduler=args.scheduler,
                                        name=args.name, progress=not args.no_progress)
    except KeyboardInterrupt:
        print("racecar: sweep interrupted; run the same command again to resume it", file=sys.stderr)
        return 130
    failed = sweep.failed_points(frame)
    note = f"; {len(failed)} point(s) failed: {', '.join(failed)}" if failed else ""
    print(f"racecar sweep: {folder / 'summary.csv'}{note}")
    return 1 if failed else 0


def print_scorecard(runs_dir: str, csv: str | None = None) -> int:
    """Print the scorecard of ``runs_dir`` as Markdown (and write it as CSV); 2 if there is nothing to show."""
    from .report import scorecard

    try:
        card = scorecard(runs_dir, chapters=list(chapters()))
    except FileNotFoundError as error:
        print(f"racecar: error: {error}", file=sys.stderr)
        return 2
    if not card.claims:
        print(f"racecar: error: no metrics.json with claims under {runs_dir}; run a chapter first", file=sys.stderr)
        return 2
    print(card.markdown())
    if csv:
        card.frame().to_csv(csv, index=False)
        print(f"racecar: {csv}")
    return 0


def list_chapters() -> None:
    for name, chapter in chapters().items():
        print(f"{name}: {chapter.title}  ({chapter.notebook})")
        for p in chapter.params:
            preset_values = ", ".join(f"{k}={chapter.presets[k][p.name]}" for k in PRESETS if p.name in chapter.presets[k])
            default = f"default {p.default!r}" if p.default is not None else f"presets: {preset_values}"
            print(f"  -p {p.name} {p.type.__name__:<5}  {p.help} ({default})")
        print()
    print("presets: " + "; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items()))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(join_param_pairs(list(sys.argv[1:] if argv is None else argv)))
    if args.command == "list":
        list_chapters()
        return 0
    # kernels started from here (papermill, the book build) draw the controls' default views and no progress bars
    os.environ.setdefault(STATIC_ENV, "1")
    if args.command == "scorecard":
        return print_scorecard(args.runs_dir, args.csv)
    if args.command == "sweep":
        return sweep_chapter(args)
    if args.command == "book":
        if args.preset not in PRESETS:
            print(f"racecar: error: preset must be one of {list(PRESETS)}, got {args.preset!r}", file=sys.stderr)
            return 2
        if args.jobs < 1:
            print(f"racecar: error: --jobs must be >= 1, got {args.jobs}", file=sys.stderr)
            return 2
        from .book import build

        return build(args.preset, args.execute, jobs=args.jobs)
    try:
        if args.cell_timeout is not None and args.cell_timeout <= 0:
            raise ParameterError(f"--cell-timeout must be a positive number of seconds, got {args.cell_timeout}")
        chapter = get_chapter(args.chapter)
        values = parse_params(chapter, args.param)
        chapter.configure(args.preset, **values)  # validates types, ranges and data folders
    except (ParameterError, FileNotFoundError) as error:
        print(f"racecar: error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out).resolve() if args.out else default_run_dir(chapter, args.preset, values)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        final = run_chapter(chapter, args.preset, values, out, progress=not args.no_progress,
                            cell_timeout=args.cell_timeout, restart=args.restart)
    except KeyboardInterrupt:
        print("racecar: interrupted; run the same command again to resume from the last checkpoints", file=sys.stderr)
        return 130
    except Exception as error:  # papermill reports the failing cell
        print(f"racecar: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"racecar: {final}\nracecar: {out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
