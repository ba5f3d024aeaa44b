"""The chapters as stored: no outputs, listed in the table of contents, runnable kernel.

The notebooks themselves are executed by ``make compare``: nbval runs each from a fresh
kernel and compares its text outputs with the strict build's run.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))
# side material moved out of a chapter ("Going further"): executed by the build, no exercises
FURTHER = sorted((ROOT / "chapters" / "further").glob("*.ipynb"))


def _toc_files() -> set[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {toc["root"]}
    for part in toc.get("parts", []):
        files.update(ch["file"] for ch in part["chapters"])
    return files


def test_there_are_chapter_notebooks():
    assert NOTEBOOKS, "no chapters/*.ipynb found"


@pytest.mark.parametrize("path", NOTEBOOKS + FURTHER, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, cell in enumerate(nb["cells"])
             if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS + FURTHER, ids=lambda p: p.name)
def test_notebook_is_in_the_table_of_contents(path):
    assert path.relative_to(ROOT).with_suffix("").as_posix() in _toc_files()


@pytest.mark.parametrize("path", FURTHER, ids=lambda p: p.name)
def test_a_going_further_page_is_linked_from_its_chapter(path):
    """``further/NN_slug`` has the label ``further-NN-slug``, and chapter NN links it."""
    nb = json.loads(path.read_text())
    label = "further-" + path.stem.replace("_", "-")
    assert f"({label})=" in "".join(nb["cells"][0]["source"]), f"{path.name} lacks the label ({label})="
    chapter = next((ROOT / "chapters").glob(path.stem[:2] + "_*.ipynb"))
    assert label in chapter.read_text(), f"{chapter.name} does not link {label}"


def test_every_toc_entry_exists():
    for entry in _toc_files():
        matches = list(ROOT.glob(entry + ".*"))
        assert matches, f"_toc.yml lists {entry}, which does not exist"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_has_a_solution_that_calls_its_checker_strictly(path):
    nb = json.loads(path.read_text())
    text = "\n".join("".join(c["source"]) for c in nb["cells"])
    exercises = re.findall(r"```\{exercise\}[^\n]*\n:label: (\S+)", text)
    solutions = re.findall(r"```\{solution-start\} (\S+)", text)
    assert exercises, f"{path.name} has no exercises"
    assert sorted(exercises) == sorted(solutions), f"{path.name}: exercises {exercises} vs solutions {solutions}"
    assert text.count("strict=True") >= len(exercises)
