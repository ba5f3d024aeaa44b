"""A verdict that stays on screen, a neutral mark for an untouched stub, and a progress table."""

from __future__ import annotations

import pytest

import mixlib.exercises as ex
from mixlib.exercises import ch01, ch04

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")


def _outputs(cell) -> str:
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.outputs)


def test_in_a_kernel_the_verdict_survives_a_line_after_the_call_and_is_not_shown_twice(tmp_path):
    cells = [
        "from mixlib.exercises import ch04\n"
        "def terms_from_gradients(e, e2, g, g2, lam):\n    raise NotImplementedError",
        "ch04.check_terms_from_gradients(terms_from_gradients)\nx = 1",     # a line after the call
        "ch04.check_terms_from_gradients(terms_from_gradients)",             # the call as the last expression
        "fb = ch04.check_terms_from_gradients(terms_from_gradients)",
        "fb",                                                                # shown again when asked for
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = [_outputs(c) for c in nb.cells]
    for i in (1, 2, 3, 4):
        assert shown[i].count("Not attempted yet") == 1, (i, shown[i])
        assert shown[i].startswith(ex.NOT_ATTEMPTED_MARK), shown[i]
    assert "❌" not in "".join(shown)


def test_progress_counts_passed_tried_and_untouched(capsys, monkeypatch):
    monkeypatch.setattr(ex, "_results", {})
    ch04.check_mixing_constant(lambda alpha: 0.25)                       # wrong
    ch01.check_vicinal_risk(lambda *a: (_ for _ in ()).throw(NotImplementedError()))  # not attempted
    table = ex.progress()
    out = capsys.readouterr().out
    assert table["4.2"] == "tried" and table["1.1"] == "not tried" and table["4.1"] == "not tried"
    assert "Chapter 4: ⬜ 4.1  ❌ 4.2  ⬜ 4.3   (0 of 3 passed)" in out
    ch04.check_mixing_constant(lambda alpha: alpha / (2 * (2 * alpha + 1)))  # right
    ch04.check_mixing_constant(lambda alpha: 0.25)                       # a later wrong answer keeps the pass
    assert ex.progress()["4.2"] == "passed"


def test_the_exercise_list_matches_the_chapters():
    """progress() lists every exercise of the book in order, and nothing else."""
    import json
    import re

    from conftest import ROOT

    for chapter, names in ex.EXERCISES.items():
        path = next((ROOT / "chapters").glob(f"{chapter:02d}_*.ipynb"))
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        called = list(dict.fromkeys(re.findall(rf"ch{chapter:02d}\.(check_\w+)\(", code)))
        assert tuple(called) == names, f"chapter {chapter}: the chapter checks {called}"
