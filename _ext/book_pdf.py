"""Local Sphinx extension: the whole book as one PDF (``make pdf``), and a link to it on the site.

LaTeX builds (``jupyter-book build . --builder pdflatex``, xelatex; the fonts and the glyph
mapping are in ``_config.yml``'s ``latex_elements``):

* numbering as on the site: sphinx-jupyterbook-latex numbers theorems and exercises per
  section ("Theorem 4.4.1") when the book has parts; the site numbers them per chapter
  ("Theorem 4.1", equation (4.3)), and so does the PDF. Keeping the environment's setting
  equal to the site's also keeps the environment that the HTML and LaTeX builds share in
  ``_build/.doctrees`` from being read again whenever one follows the other;
* the parts' captions carry their own numeral ("I. Interpolating examples") for the site's
  sidebar; LaTeX numbers parts itself, so the PDF's part titles drop it ("Part I: Interpolating
  examples", not "Part I: I. Interpolating examples"), and the appendix part starts LaTeX's
  ``\\appendix`` (its chapters are lettered A, B, ..., as they are unnumbered on the site);
* a proof (sphinx-proof) is a box without a title, which LaTeX cannot typeset as Sphinx's
  titled ``sphinxadmonition``: its "Proof." opening becomes the box's title;
* Jupyter Book's LaTeX class (``jupyterBook.cls``) loads ``bbm`` for its ``\\RR``-style macros,
  a package that Debian ships only in the 1 GB ``texlive-fonts-extra``; ``inputenc``, which
  xelatex ignores with a warning; and ``mathrsfs``, whose script letters come in too few sizes
  for a 10 pt book (a warning) and which unicode-math's ``\\mathscr`` replaces anyway. The book
  uses none of them: the copy next to ``book.tex`` defines ``\\mathbbm`` as amssymb's
  ``\\mathbb`` and leaves the other two out.

HTML builds: once ``make pdf`` has written ``_build/latex/book.pdf``, the site carries a copy
(``book.pdf`` at its root) and every page's download menu links to it. Whether the PDF exists
is a configuration value that only the HTML output depends on, so the pages are written again
when it appears or goes.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging

logger = logging.getLogger(__name__)

PDF_NAME = "book.pdf"
_PART_NUMERAL = re.compile(r"^[IVXLC]+\.\s+")
_PROOF_OPENING = "Proof. "
_APPENDIX_CAPTION = "Appendix"


def latex_pdf(app: Sphinx) -> Path:
    """Where ``make pdf`` writes the book: Jupyter Book's ``_build/latex``, next to ``_build/html``."""
    return Path(app.outdir).parent / "latex" / PDF_NAME


# --- LaTeX ----------------------------------------------------------------------------------------

def _number_per_chapter(app: Sphinx) -> None:
    """Theorems, exercises and figures numbered per chapter, as on the site (the shared environment)."""
    if app.builder.format == "latex":
        app.config.numfig_secnum_depth = 1  # after sphinx-jupyterbook-latex set it to 2


def _latex_counters_per_chapter(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """LaTeX's own counters (equations, figures) reset per chapter, as sphinx-jupyterbook-latex meant.

    Sphinx's LaTeX writer counts the depth from the top level of the book, a part here, so it
    needs 2 where the environment needs 1 for "chapter". The LaTeX builder resolves the book's
    doctree after the environment is pickled and before its writer reads the setting.
    """
    if app.builder.format == "latex":
        app.config.numfig_secnum_depth = 2


class _BookPdfStructure(SphinxPostTransform):
    """Part titles without their numeral, the appendix lettered, and proofs titled (LaTeX only)."""

    default_priority = 800  # after sphinx-jupyterbook-latex made the parts (700)
    formats = ("latex",)

    def run(self, **kwargs) -> None:
        docs = self.env.all_docs
        for section in list(self.document.findall(nodes.section)):
            part = section.get("docname")
            if not part or part in docs or not section.children or not isinstance(section[0], nodes.title):
                continue  # not a part made from a toctree caption
            title = section[0]
            text = title.astext()
            stripped = _PART_NUMERAL.sub("", text)
            if stripped != text:
                title.children = [nodes.Text(stripped)]
            if stripped == _APPENDIX_CAPTION:
                # start_of_file > section: \appendix goes before the part's own file
                holder = section.parent.parent if section.parent is not None else None
                if holder is not None and holder.parent is not None:
                    holder.parent.insert(holder.parent.index(holder),
                                         nodes.raw("", "\\appendix\n", format="latex"))
        for box in self.document.findall(nodes.admonition):
            if "proof" not in box["classes"] or (box.children and isinstance(box[0], nodes.title)):
                continue
            opening = next(iter(box.findall(nodes.Text)), None)
            if opening is not None and str(opening).startswith(_PROOF_OPENING):
                rest = str(opening)[len(_PROOF_OPENING):]
                opening.parent.replace(opening, nodes.Text(rest))
            box.insert(0, nodes.title("", "Proof"))


def _patch_latex_class(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "latex":
        return
    cls = Path(app.outdir) / "jupyterBook.cls"
    if not cls.exists():
        return
    text = cls.read_text(encoding="utf8")
    patched = (text.replace("\\RequirePackage[utf8]{inputenc}\n", "")
               .replace("\\RequirePackage{mathrsfs}\n", "")
               .replace("\\RequirePackage{bbm}\n", "\\providecommand{\\mathbbm}[1]{\\mathbb{#1}}\n"))
    if patched != text:
        cls.write_text(patched, encoding="utf8")


# --- HTML -----------------------------------------------------------------------------------------

def _note_pdf(app: Sphinx, config: Config) -> None:
    config.book_pdf_available = latex_pdf(app).exists()


def _add_download_entry(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """The whole book as a PDF, last in the theme's download menu (where ``make pdf`` has run)."""
    if not app.config.book_pdf_available:
        return
    for button in context.get("header_buttons", []):
        if button.get("label") != "download-buttons":
            continue
        button.setdefault("buttons", []).append({
            "type": "link",
            "url": context["pathto"](PDF_NAME, 1),
            "text": "PDF (whole book)",
            "icon": "fas fa-file-pdf",
            "tooltip": "Download the whole book as one PDF",
            "label": "download-book-pdf-button",
        })


def _copy_pdf(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = latex_pdf(app), Path(app.outdir) / PDF_NAME
    if source.exists():
        shutil.copyfile(source, target)
        logger.info(f"the book's PDF copied to {PDF_NAME}")
    elif target.exists():
        target.unlink()  # no stale copy where `make pdf` has not run since the last clean


def setup(app: Sphinx) -> dict:
    app.add_config_value("book_pdf_available", False, "html", [bool])
    app.connect("config-inited", _note_pdf)
    app.connect("builder-inited", _number_per_chapter, priority=600)
    app.connect("doctree-resolved", _latex_counters_per_chapter)
    app.add_post_transform(_BookPdfStructure)
    app.connect("build-finished", _patch_latex_class)
    # after sphinx-book-theme builds its header buttons (priority 501)
    app.connect("html-page-context", _add_download_entry, priority=600)
    app.connect("build-finished", _copy_pdf)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
