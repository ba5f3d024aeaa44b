"""Copy the notebooks the book build executed into a folder, ready for nbval to compare against.

The build merges each cell's printed text into its first output (``nb_merge_streams``), but the
copy it saves in ``_build/jupyter_execute`` keeps the pieces it merged as further outputs, so the
same lines appear twice. nbval, which joins the pieces of a fresh run into one, would then see
outputs that the fresh run does not have. This script drops those leftovers: after the first
stream output of a name (stdout or stderr), a later one of the same name whose text the first
already contains is a merged piece. Nothing else is changed.

Usage: ``python scripts/compare_reference.py OUT_DIR NOTEBOOK...``; prints the copies' paths.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def drop_merged_pieces(notebook: dict) -> int:
    """Remove leftover stream pieces in place; return how many were removed."""
    removed = 0
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        first: dict[str, str] = {}
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                name, text = output.get("name"), "".join(output.get("text", ""))
                if name in first and text in first[name]:
                    removed += 1
                    continue
                first.setdefault(name, text)
            kept.append(output)
        cell["outputs"] = kept
    return removed


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in argv[1:]:
        notebook = json.loads(Path(name).read_text())
        drop_merged_pieces(notebook)
        target = out_dir / Path(name).name
        target.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
