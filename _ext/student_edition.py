"""Local Sphinx extension: each chapter's student edition and run time, on the chapter's page.

For every page built from a notebook in ``chapters/`` that has exercises:

* the student edition (``scripts/student.py``: solutions removed, a stub cell after each
  exercise) is written to ``_student/<chapter>_student.ipynb`` in the output folder, for
  every chapter at the end of every build (a chapter it cannot handle fails the build);
* a line under the page title gives the run time the build measured for that notebook
  (from myst-nb's execution data, cached runs included) and links to the full notebook and
  to the student edition; a paragraph of the chapter starting with "Run time" is replaced
  by it, so the page shows one measured figure, not a typed one;
* the measured run times go to ``run-times.json`` in the output folder, so that the
  student editions ``make lab`` writes state the same figure;
* the theme's download menu gets a third entry, the student edition, after the ``.ipynb``.

Everything is local files: the site stays offline.
"""

from __future__ import annotations

import html
import importlib.util
import os
import sys
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinx.util.osutil import relative_uri

logger = logging.getLogger(__name__)
STUDENT_DIR = "_student"
_ROOT = Path(__file__).resolve().parents[1]


def _student_module():
    """``scripts/student.py``, loaded once (it is a script, not a package)."""
    name = "mixlib_book_student"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _ROOT / "scripts" / "student.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def _course_download():
    """The sibling extension ``course_download`` (it names the chapter zips)."""
    name = "course_download"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("course_download.py"))
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def student_filename(docname: str) -> str:
    """Where the student edition of ``docname`` goes, relative to the output folder."""
    return f"{STUDENT_DIR}/{docname.rsplit('/', 1)[-1]}_student.ipynb"


def _chapter_source(app: Sphinx, docname: str) -> Path | None:
    """The chapter notebook behind ``docname``, if it has exercises."""
    if not docname.startswith("chapters/"):
        return None
    path = Path(app.env.doc2path(docname))
    if path.suffix != ".ipynb" or "{solution-start}" not in path.read_text(encoding="utf8"):
        return None
    return path


def _runtime(app: Sphinx, docname: str) -> float | None:
    try:
        from myst_nb.sphinx_ import NbMetadataCollector
    except ImportError:  # pragma: no cover - myst-nb is a dependency of the book
        return None
    data = NbMetadataCollector.get_exec_data(app.env, docname)
    if not data or not data.get("succeeded") or data.get("runtime") is None:
        return None
    return float(data["runtime"])


def runtime_sentence(seconds: float | None) -> str | None:
    """The run-time sentence of a chapter page and its student edition (``scripts/student.py``)."""
    return _student_module().runtime_sentence(seconds, os.cpu_count() or 1)


def _is_runtime_paragraph(node: nodes.Node) -> bool:
    return isinstance(node, nodes.paragraph) and node.astext().strip().lower().startswith("run time")


def _add_page_note(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    source = _chapter_source(app, docname)
    if source is None or app.builder.format != "html":
        return
    target = student_filename(docname)
    runtime = runtime_sentence(_runtime(app, docname))
    page = app.builder.get_target_uri(docname)
    full = relative_uri(page, f"_sources/{docname}.ipynb")
    student = relative_uri(page, target)
    parts = []
    if runtime:
        parts.append(html.escape(runtime))
    chapter_zip = relative_uri(page, _course_download().chapter_zip(docname))
    parts.append(
        f'Download the notebook: <a class="reference download-full" href="{full}" download>full</a> · '
        f'<a class="reference download-student" href="{student}" download>student edition</a> '
        "(a stub to fill in after each exercise, no solutions). "
        f'<a class="reference download-chapter" href="{chapter_zip}" download>Run this chapter on your machine</a>: '
        "a zip with the student edition, the <code>mixlib</code> wheel and a five-line README.")
    note = nodes.raw("", f'<p class="chapter-meta">{" ".join(parts)}</p>\n', format="html")

    section = doctree.next_node(nodes.section)
    if section is None:
        return
    for child in list(section.children):  # the chapter's opening, before its first subsection
        if isinstance(child, nodes.section):
            break
        if _is_runtime_paragraph(child):
            section.remove(child)  # a typed run time gives way to the measured one
    index = 1 if section.children and isinstance(section[0], nodes.title) else 0
    section.insert(index, note)


def _add_download_entry(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Add the student edition to the theme's download menu, after the full notebook."""
    if _chapter_source(app, pagename) is None:
        return
    for button in context.get("header_buttons", []):
        if button.get("label") != "download-buttons":
            continue
        entries = button.setdefault("buttons", [])
        # the full notebook is the "notebook" entry, or the "source" one when the source is a .ipynb
        labels = [b.get("label") for b in entries]
        position = next((labels.index(label) + 1 for label in ("download-notebook-button", "download-source-button")
                         if label in labels), len(entries))
        entries.insert(position, {
            "type": "link",
            "url": context["pathto"](student_filename(pagename), 1),
            "text": "student .ipynb",
            "icon": "fas fa-pencil",
            "tooltip": "Download the student edition: exercises with stubs, no solutions",
            "label": "download-student-button",
        })


def _write_student_editions(app: Sphinx, exception: Exception | None) -> None:
    """Write every chapter's student edition (all of them: the generator may have changed)."""
    if exception is not None or app.builder.format != "html":
        return
    module = _student_module()
    written = 0
    for docname in sorted(app.env.found_docs):
        source = _chapter_source(app, docname)
        if source is None:
            continue
        runtime = runtime_sentence(_runtime(app, docname))
        try:
            module.write_student(source, Path(app.outdir) / student_filename(docname),
                                 runtime_note=f"*{runtime}*" if runtime else None)
        except Exception as exc:  # the page links to it: a chapter the generator cannot handle fails the build
            raise ExtensionError(f"student edition of {docname}: {exc}") from exc
        written += 1
    logger.info(f"student editions written: {written} (in {STUDENT_DIR}/)")
    # the same measured times, for the student editions `make lab` writes (scripts/student.py)
    times = {docname: _runtime(app, docname) for docname in sorted(app.env.found_docs)}
    module.write_run_times(Path(app.outdir) / module.RUN_TIMES,
                           {d: t for d, t in times.items() if t is not None}, os.cpu_count() or 1)


def setup(app: Sphinx) -> dict:
    app.connect("doctree-resolved", _add_page_note)
    app.connect("build-finished", _write_student_editions)
    # after sphinx-book-theme builds its header buttons (priority 501)
    app.connect("html-page-context", _add_download_entry, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
