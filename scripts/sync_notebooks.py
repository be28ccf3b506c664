"""Write each chapter notebook's ``parameters`` cell from its chapter spec (the one list of its parameters).

    python scripts/sync_notebooks.py          # rewrite the cells that differ
    python scripts/sync_notebooks.py --check  # exit 1 if any differs (tests/test_chapters.py checks the same)
"""

from __future__ import annotations

import argparse
import sys

import nbformat

from racecar_core.experiments import chapters


def parameters_cell(nb) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"expected one cell tagged 'parameters', found {len(cells)}")
    return cells[0]


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--check", action="store_true", help="only report notebooks whose cell differs")
    check = args.parse_args(argv).check
    stale = []
    for chapter in chapters().values():
        path = chapter.notebook_path()
        nb = nbformat.read(path, as_version=4)
        cell = parameters_cell(nb)
        if cell.source != chapter.parameters_cell():
            stale.append(path)
            if not check:
                cell.source = chapter.parameters_cell()
                nbformat.write(nb, path)
    for path in stale:
        print(f"{'stale' if check else 'wrote'}: {path}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
