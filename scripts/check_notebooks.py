"""Check that notebooks are stored as the project keeps them: no outputs, no execution counts.

The site shows each chapter freshly executed, so a stored output could only be stale. Used by
the pre-commit hook (``.pre-commit-config.yaml``) and by the tests::

    python scripts/check_notebooks.py chapters/*.ipynb          # report, exit 1 if any
    python scripts/check_notebooks.py --fix chapters/*.ipynb    # strip them in place
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat


def stored_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """Ids of the code cells that carry outputs or an execution count."""
    return [cell.get("id", f"#{i}") for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove every code cell's outputs and execution count (in place; returns ``nb``)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--fix", action="store_true", help="strip outputs in place instead of failing")
    args = parser.parse_args(argv)
    bad = 0
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        cells = stored_outputs(nb)
        if not cells:
            continue
        if args.fix:
            nbformat.write(strip(nb), path)
            print(f"stripped  {path} ({len(cells)} cells)")
        else:
            bad += 1
            print(f"{path}: outputs stored in {len(cells)} cells ({', '.join(cells[:5])}"
                  f"{', ...' if len(cells) > 5 else ''}); strip them: python scripts/check_notebooks.py --fix {path}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
