"""The course, the library and each chapter as downloads of the built site (``_ext/course_download.py``)."""

from __future__ import annotations

import ast
import re
import sys
import zipfile
from email.parser import Parser

import pytest
from conftest import ROOT, SITE
from site_helpers import require

sys.path.insert(0, str(ROOT / "_ext"))
import course_download  # noqa: E402

DOWNLOADS = SITE / course_download.DOWNLOADS


def _require_downloads():
    require((DOWNLOADS / course_download.wheel_name()).exists(), "the book is not built: run `make book`")


def _chapter_pages() -> list[str]:
    return sorted(p.name.removesuffix("_student.ipynb") for p in (SITE / "_student").glob("*_student.ipynb"))


def test_the_course_archive_holds_the_repository():
    _require_downloads()
    with zipfile.ZipFile(DOWNLOADS / course_download.course_name()) as archive:
        names = set(archive.namelist())
    prefix = course_download.course_name().removesuffix(".zip") + "/"
    for needed in ("README.md", "Makefile", "requirements.lock", "mixlib/__init__.py", "_toc.yml", "LICENSE"):
        assert prefix + needed in names, f"the course download lacks {needed}"
    assert any(n.startswith(prefix + "chapters/") and n.endswith(".ipynb") for n in names)
    assert not any("/_build/" in n or "/.venv/" in n for n in names)


def test_the_wheel_declares_every_library_mixlib_imports():
    """A wheel installed on a bare machine must bring what `import mixlib...` needs."""
    _require_downloads()
    with zipfile.ZipFile(DOWNLOADS / course_download.wheel_name()) as wheel:
        meta = Parser().parsestr(wheel.read(f"mixlib-{course_download.version()}.dist-info/METADATA").decode())
        sources = [wheel.read(n).decode() for n in wheel.namelist() if n.endswith(".py")]
        assert any(n.startswith("mixlib/results/") and n.endswith(".json") for n in wheel.namelist())
    declared = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in meta.get_all("Requires-Dist")
                if "extra ==" not in r}
    distribution = {"sklearn": "scikit-learn"}
    imported = set()
    for text in sources:
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m != "mixlib"}
    # imported inside functions, for the notebooks only (sliders, the progress display)
    optional = {"ipywidgets", "IPython", "matplotlib_inline"}
    missing = {distribution.get(m, m) for m in third_party - optional} - declared
    assert not missing, f"the wheel does not declare {sorted(missing)}"
    notebooks = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in meta.get_all("Requires-Dist")
                 if "extra == \"notebooks\"" in r}
    assert {"jupyterlab", "jupyterlab-myst", "ipywidgets"} <= notebooks


@pytest.mark.parametrize("stem", ["01_erm_vicinal_risk", "04_gradient_expansion"])
def test_a_chapter_zip_has_what_a_bare_machine_needs(stem):
    _require_downloads()
    path = DOWNLOADS / f"{stem}.zip"
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        readme = archive.read("README.txt").decode()
    assert names == {f"{stem}_student.ipynb", course_download.wheel_name(), "README.txt"}
    assert len(readme.strip().splitlines()) == 5
    assert course_download.wheel_name() in readme and f"{stem}_student.ipynb" in readme


def test_every_chapter_page_links_its_zip_and_the_intro_links_the_course():
    _require_downloads()
    chapters = _chapter_pages()
    assert len(chapters) == 7
    for stem in chapters:
        html = (SITE / "chapters" / f"{stem}.html").read_text()
        href = re.search(r'class="reference download-chapter" href="([^"]+)"', html)
        assert href, f"{stem}: no link to the chapter's zip"
        assert (SITE / "chapters" / href.group(1)).resolve().is_file()
    intro = (SITE / "intro.html").read_text()
    for what in ("course", "wheel"):
        href = re.search(rf'<a class="[^"]*\bdownload-{what}\b[^"]*" href="([^"]+)"', intro)
        assert href, f"the intro does not link the {what}"
        assert (SITE / href.group(1)).is_file()


def test_no_repository_button_without_a_repository():
    require((SITE / "intro.html").exists(), "the book is not built: run `make book`")
    assert "repository-button" not in (SITE / "intro.html").read_text()
