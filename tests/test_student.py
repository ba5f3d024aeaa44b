"""The student edition: generated from the chapters, no solutions, a working stub cell per exercise.

The generation tests need no build. The last tests look at the built site (``make book``)
and are skipped, with the reason, when it is not there.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import re
import sys

import nbformat
import pytest
from conftest import ROOT, SITE
from site_helpers import require

if "mixlib_book_student" not in sys.modules:  # scripts/student.py is a script, not a package
    _spec = importlib.util.spec_from_file_location("mixlib_book_student", ROOT / "scripts" / "student.py")
    sys.modules["mixlib_book_student"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["mixlib_book_student"])
student = sys.modules["mixlib_book_student"]

CHAPTERS = student.chapter_paths()
EXERCISE = re.compile(r"```\{exercise\}[^\n]*\n:label: (\S+)")


def _source_cells(path):
    return json.loads(path.read_text())["cells"]


def _exercise_labels(path) -> list[str]:
    text = "\n".join("".join(c["source"]) for c in _source_cells(path))
    return EXERCISE.findall(text)


def _solution_code(path) -> list[str]:
    """The code cells between each solution-start and solution-end of the chapter."""
    inside, code = False, []
    for cell in _source_cells(path):
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            starts, ends = text.count("{solution-start}"), text.count("{solution-end}")
            if starts or ends:
                inside = text.rfind("{solution-start}") > text.rfind("{solution-end}")
        elif inside:
            code.append(text)
    return code


@pytest.fixture(scope="module", params=CHAPTERS, ids=lambda p: p.stem)
def edition(request):
    return request.param, student.student_notebook(request.param)


def test_there_are_chapters_with_exercises():
    assert CHAPTERS and all(_exercise_labels(p) for p in CHAPTERS)


def test_it_starts_with_how_to_install_mixlib(edition):
    _, nb = edition
    first = nb.cells[0]
    assert first.cell_type == "markdown" and len(first.source.splitlines()) == 1
    assert "mixlib" in first.source and "pip install -e ." in first.source and "make lab" in first.source


def test_it_has_no_solutions_and_no_outputs(edition):
    path, nb = edition
    text = "\n".join(c.source for c in nb.cells)
    assert "{solution-start}" not in text and "{solution-end}" not in text
    assert "strict=True" not in text
    solutions = _solution_code(path)
    assert solutions, f"{path.name}: no solution code found in the chapter"
    for code in solutions:
        assert code.strip() not in text, f"{path.name}: solution code kept:\n{code}"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_the_rest_of_the_chapter_is_kept(edition):
    path, nb = edition
    solutions = {c.strip() for c in _solution_code(path)}
    kept = {c.source.strip() for c in nb.cells if c.cell_type == "code"}
    for cell in _source_cells(path):
        code = "".join(cell["source"]).strip()
        if cell["cell_type"] == "code" and code not in solutions:
            assert code in kept, f"{path.name}: chapter code dropped:\n{code[:200]}"


def _stub_cells(nb):
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("id", "").startswith("stub-")]


def test_each_exercise_is_followed_by_its_stub_cell(edition):
    path, nb = edition
    labels = _exercise_labels(path)
    stubs = _stub_cells(nb)
    assert [c.id for _, c in stubs] == [student._cell_id("stub-" + label) for label in labels]
    for (i, _), label in zip(stubs, labels, strict=True):
        before = nb.cells[i - 1]
        assert before.cell_type == "markdown" and f":label: {label}" in before.source, (
            f"{path.name}: the stub for {label} does not follow its exercise")
        # the exercise text points at the cell instead of showing the stub as indented text
        assert student.YOUR_TURN in before.source
        assert not re.search(r"^    def ", before.source, re.MULTILINE)


def test_each_stub_cell_is_self_contained_and_calls_its_checker(edition):
    path, nb = edition
    number = path.stem[:2]
    for _, cell in _stub_cells(nb):
        tree = ast.parse(cell.source)
        imported = {a.asname or a.name.split(".")[0] for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
                    for a in n.names}
        assert f"ch{number}" in imported and "torch" in imported
        functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        assert len(functions) == 1
        fn = functions[0]
        assert ast.get_docstring(fn)
        assert isinstance(fn.body[-1], ast.Raise) and "NotImplementedError" in ast.unparse(fn.body[-1])
        assert "# " in cell.source.split(fn.name, 1)[1], "the stub says where the learner's code goes"
        last = tree.body[-1]
        assert isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
        call = ast.unparse(last.value)
        assert call.startswith(f"ch{number}.check_") and call.endswith(f"({fn.name})"), call
        checker = getattr(importlib.import_module(f"mixlib.exercises.ch{number}"), last.value.func.attr)
        assert callable(checker)


def test_an_unattempted_exercise_says_so_without_a_traceback(edition, capsys):
    """Run each stub cell on its own, as a learner who has not started would."""
    path, nb = edition
    for _, cell in _stub_cells(nb):
        namespace: dict = {}
        tree = ast.parse(cell.source)
        *body, last = tree.body
        exec(compile(ast.Module(body=body, type_ignores=[]), "<stub>", "exec"), namespace)  # noqa: S102
        feedback = eval(compile(ast.Expression(last.value), "<stub>", "eval"), namespace)  # noqa: S307
        assert not feedback, f"{path.name}: an empty stub passed {cell.id}"
        message = str(feedback)
        assert "not attempted" in message.lower(), f"{path.name} {cell.id}: {message}"
        assert "Traceback" not in message and "Traceback" not in capsys.readouterr().out


def test_the_library_function_a_stub_would_replace_keeps_its_name():
    """Chapter 4 imports mixlib's mixing_constant; the stub must not shadow it."""
    nb = student.student_notebook(next(p for p in CHAPTERS if p.stem.startswith("04")))
    sources = [c.source for _, c in _stub_cells(nb)]
    assert not any(re.search(r"^def mixing_constant\(", s, re.MULTILINE) for s in sources)
    assert any("def my_mixing_constant(alpha)" in s for s in sources)


def test_missing_only_keeps_the_learners_copy_and_reset_restores_it(tmp_path, capsys):
    chapter = CHAPTERS[0]
    target = tmp_path / chapter.name
    student.main(["--out", str(tmp_path), chapter.stem[:2]])
    nb = nbformat.read(target, as_version=4)
    nb.cells[-1].source = "my answer"
    nbformat.write(nb, target)
    student.main(["--out", str(tmp_path), "--missing-only"])
    assert nbformat.read(target, as_version=4).cells[-1].source == "my answer"
    assert len(list(tmp_path.glob("*.ipynb"))) == len(CHAPTERS)
    student.main(["--out", str(tmp_path), chapter.stem[:2]])  # make reset CH=NN
    assert nbformat.read(target, as_version=4).cells[-1].source != "my answer"
    kept = list((tmp_path / student.BACKUP).glob(f"{chapter.stem}-*.ipynb"))
    assert len(kept) == 1 and nbformat.read(kept[0], as_version=4).cells[-1].source == "my answer"
    assert "kept      your previous copy" in capsys.readouterr().out


def test_run_all_works_on_the_shortest_chapter(tmp_path):
    """The student edition of chapter 1 runs top to bottom; each stub answers "not attempted"."""
    nbclient = pytest.importorskip("nbclient")
    nb = student.student_notebook(CHAPTERS[0])
    nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    for _, cell in _stub_cells(nb):
        text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.outputs)
        assert "not attempted" in text.lower(), f"{cell.id}: {text}"
        assert not any(o.output_type == "error" for o in cell.outputs)


# --------------------------------------------------------------------------- the built site

def _chapter_pages():
    return [(p, SITE / "chapters" / f"{p.stem}.html") for p in CHAPTERS]


def _require_site():
    require((SITE / "index.html").exists(), f"the book is not built: run `make book` (no {SITE / 'index.html'})")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_page_links_both_notebooks(chapter):
    _require_site()
    page = SITE / "chapters" / f"{chapter.stem}.html"
    assert page.exists(), f"{page} is missing"
    html = page.read_text()
    for css, where in (("download-full", "full"), ("download-student", "student")):
        hrefs = re.findall(rf'class="reference {css}" href="([^"]+)"', html)
        assert hrefs, f"{page.name}: no link to the {where} notebook"
        target = (page.parent / hrefs[0]).resolve()
        assert target.is_file(), f"{page.name}: {hrefs[0]} does not exist"
        nb = nbformat.read(target, as_version=4)
        nbformat.validate(nb)
        if where == "student":
            assert "pip install -e ." in nb.cells[0].source
            assert "{solution-start}" not in "\n".join(c.source for c in nb.cells)
    assert "btn-download-student-button" in html, f"{page.name}: the download menu lacks the student edition"
    assert "Run time: about" in html, f"{page.name}: no run time under the title"


def test_status_page_has_the_execution_table():
    _require_site()
    html = (SITE / "chapters" / "status.html").read_text()
    for chapter in CHAPTERS:
        assert chapter.stem in html, f"the execution table does not list {chapter.stem}"


def _status_seconds() -> dict[str, float]:
    html = (SITE / "chapters" / "status.html").read_text()
    rows = re.findall(r'<span class="doc">chapters/([^<]+)</span>.*?</td>\s*<td><p>[^<]*</p></td>\s*'
                      r'<td><p>[^<]*</p></td>\s*<td><p>([0-9.]+)</p></td>', html, flags=re.S)
    return {name: float(seconds) for name, seconds in rows}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_the_run_time_is_measured_once_and_the_same_everywhere(chapter, tmp_path):
    """Chapter page, site student edition, `make lab` edition and status page: one measured figure."""
    _require_site()
    typed = [c for c in _source_cells(chapter) if c["cell_type"] == "markdown"
             and student.RUN_TIME_LINE.search("".join(c["source"]))]
    assert not typed, f"{chapter.name} types its run time; the build states the measured one"
    seconds = _status_seconds()[chapter.stem]
    stored = json.loads((SITE / student.RUN_TIMES).read_text())
    assert stored["seconds"][f"chapters/{chapter.stem}"] == pytest.approx(seconds, abs=0.01)
    sentence = student.runtime_sentence(stored["seconds"][f"chapters/{chapter.stem}"], stored["cores"])
    assert student.format_runtime(seconds) in sentence
    page = (SITE / "chapters" / f"{chapter.stem}.html").read_text()
    assert sentence in page.replace("\n", " "), f"{chapter.stem}: the page states another run time"
    on_site = nbformat.read(SITE / "_student" / f"{chapter.stem}_student.ipynb", as_version=4)
    student.main(["--out", str(tmp_path), chapter.stem[:2]])
    in_lab = nbformat.read(tmp_path / chapter.name, as_version=4)
    for where, nb in (("website", on_site), ("make lab", in_lab)):
        notes = [c.source for c in nb.cells if "Run time" in c.source]
        assert notes == [f"*{sentence}*"], f"{chapter.stem}, {where} student edition: {notes}"


# --------------------------------------------------------------------------- reading like the site

def test_numbers_match_the_website():
    """Exercise 4.1, Lemma 4.1 and eq. (4.1) in a student edition are the site's numbers."""
    _require_site()
    numbers = student.site_numbers()
    checked = 0
    for chapter in CHAPTERS:
        html = (SITE / "chapters" / f"{chapter.stem}.html").read_text()
        shown = re.findall(r'id="([\w-]+)">\s*<p class="admonition-title">'
                           r'<span class="caption-number">([^<]+?) </span>', html)
        shown += re.findall(r'id="equation-([\w-]+)">\s*<span class="eqno">(\([0-9.]+\))', html)
        for label, number in shown:
            assert numbers.names.get(label) == number, f"{chapter.stem}: {label} is {number} on the site"
            checked += 1
    assert checked > 50


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_citations_references_and_numbers_are_resolved(chapter):
    """No role, numbered directive or equation label is left for JupyterLab to get wrong."""
    nb = student.student_notebook(chapter)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert not re.findall(r"\{(?:cite(?::\w+)?|prf:ref|ref|numref|eq|doc|term)\}`", text)
    assert not re.search(r"\{(?:exercise|prf:\w+)\}", text)
    assert not re.search(r"\$\$[ \t]*\([\w-]+\)", text), "an equation label is left"
    source = "\n".join("".join(c["source"]) for c in _source_cells(chapter) if c["cell_type"] == "markdown")
    if "{cite" in source:
        assert nb.cells[-1].source.startswith("## References")
    number = re.search(r"^(\d+)_", chapter.name).group(1).lstrip("0")
    for label in _exercise_labels(chapter):
        assert f"Exercise {number}." in text, f"{chapter.stem}: exercise {label} lacks its site number"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.metadata["language_info"]["name"] == "python"


def test_a_citation_reads_as_author_and_year():
    bib = student._bibliography()
    cited: list[str] = []
    numbers = student.SiteNumbers(names={"thm-x": "Theorem 4.1"})
    out = student._as_on_the_site("See {cite:t}`zhang2018mixup` and {prf:ref}`thm-x` {cite:p}`cho2022mixupgradient`.",
                                  numbers, bib, cited, "test")
    assert out == "See Zhang et al. (2018) and Theorem 4.1 (Cho, 2022)."
    assert cited == ["zhang2018mixup", "cho2022mixupgradient"]
    with pytest.raises(ValueError, match="not a label"):
        student._as_on_the_site("{prf:ref}`thm-nowhere`", numbers, bib, [], "test")
    with pytest.raises(ValueError, match="not in references.bib"):
        student._as_on_the_site("{cite:p}`nobody2099`", numbers, bib, [], "test")


def test_a_then_part_gets_its_own_cells():
    """ "Then use it on ..." and "answer in words" have a code cell and an answer cell of their own."""
    nb = student.student_notebook(next(p for p in CHAPTERS if p.name.startswith("01_")))
    ids = [c.get("id", "") for c in nb.cells]
    stub = ids.index(student._cell_id("stub-ex-ch01-segment"))
    parts = ("then", "then-code", "then-answer")
    assert ids[stub + 1:stub + 4] == [student._cell_id(f"{k}-ex-ch01-segment") for k in parts]
    assert "opposite classes" in nb.cells[stub + 1].source and nb.cells[stub + 2].cell_type == "code"
    text = "Then use it on pairs: how sure is it?"
    assert student.follow_up(f"Write `f(x)`. {text} ") == text
    assert student.follow_up("Write `f(x)` and return it.") == ""


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_the_student_edition_does_not_point_to_solutions_it_lacks(chapter):
    nb = student.student_notebook(chapter)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown").lower()
    for phrase in ("see the solution", "the solution below", "in the solution", "solution above"):
        assert phrase not in text, f"{chapter.stem}: the student edition mentions '{phrase}'"
