"""The whole book as one PDF (``make pdf``): opened with poppler's tools and checked.

Skipped, with the reason, when the PDF has not been built (``make test`` does not build it;
CI builds it in a step of its own and sets BOOK_PDF_REQUIRED=1 so that a missing PDF fails).
BOOK_PDF points the tests at another copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SITE

PDF = Path(os.environ.get("BOOK_PDF", ROOT / "_build" / "latex" / "book.pdf"))
LOG = PDF.with_suffix(".log")
MIN_PAGES = 200          # 277 pages when this test was written
MIN_PAGES_WITH_IMAGES = 15  # 24 pages carry a figure (every figure is a notebook's PNG output)
POPPLER = ("pdfinfo", "pdftotext", "pdfimages")


def _require_pdf() -> None:
    reason = None
    if not PDF.exists():
        reason = f"{PDF.relative_to(ROOT) if PDF.is_relative_to(ROOT) else PDF} is not built: run make pdf"
    elif missing := [tool for tool in POPPLER if shutil.which(tool) is None]:
        reason = f"poppler-utils ({', '.join(missing)}) not installed: make pdf installs it"
    if reason is None:
        return
    if os.environ.get("BOOK_PDF_REQUIRED"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _pdf_built() -> None:
    _require_pdf()


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


@cache
def _text() -> str:
    """The PDF's text with whitespace collapsed and typographic quotes made plain."""
    text = _run("pdftotext", "-enc", "UTF-8", str(PDF), "-")
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    return re.sub(r"\s+", " ", text)


def _plain(markdown: str) -> str:
    """A heading's text as printed: no Markdown code marks, emphasis or inline math dollars."""
    return re.sub(r"\s+", " ", re.sub(r"[`*$]", "", markdown)).strip().replace("\u2019", "'")


def _toc_sources() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [ch["file"] for part in toc.get("parts", []) for ch in part["chapters"]]
    sources = []
    for name in files:
        for suffix in (".ipynb", ".md"):
            if (ROOT / f"{name}{suffix}").exists():
                sources.append(ROOT / f"{name}{suffix}")
                break
    return sources


def _markdown(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf8"))["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return path.read_text(encoding="utf8")


def _title(path: Path) -> str:
    match = re.search(r"^# (.+)$", _markdown(path), re.MULTILINE)
    assert match, f"{path.name} has no title"
    return _plain(match.group(1))


def _numbered_chapters() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names = [ch["file"] for part in toc.get("parts", []) if part.get("numbered") for ch in part["chapters"]]
    return [p for p in _toc_sources() if str(p.relative_to(ROOT).with_suffix("")) in names]


def test_page_count():
    pages = int(re.search(r"^Pages:\s+(\d+)", _run("pdfinfo", str(PDF)), re.MULTILINE).group(1))
    assert pages > MIN_PAGES, f"the PDF has {pages} pages, fewer than {MIN_PAGES}: chapters missing?"


def test_book_title_and_every_chapter_title():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    expected = [_plain(config["title"])] + [_title(p) for p in _toc_sources()]
    missing = [title for title in expected if title not in _text()]
    assert not missing, f"titles not in the PDF's text: {missing}"


def test_exercises_each_followed_by_its_solution():
    """Each numbered chapter with exercises: the boxes and their solutions, numbered as on the site."""
    checked = 0
    for number, path in enumerate(_numbered_chapters(), start=1):
        if "{exercise}" not in _markdown(path):
            continue
        first = _text().find(f"Exercise {number}.1 ")
        solution = _text().find(f"Solution to Exercise {number}.1 ")
        assert first >= 0, f"{path.name}: Exercise {number}.1 is not in the PDF"
        assert solution > first, f"{path.name}: no solution after Exercise {number}.1"
        checked += 1
    assert checked >= 5


def test_theorems_equations_and_bibliography():
    text = _text()
    assert re.search(r"Theorem 4\.1 \(", text), "no theorem box (sphinx-proof) in the PDF"
    assert re.search(r"\(4\.\d+\)", text), "no numbered equation of chapter 4"
    # typeset maths: unicode-math's italic λ (U+1D706), as in the theorem's "every λ ∈ [0, 1]"
    assert "\U0001d706 \u2208 [0, 1]" in text, "the equations are not typeset as maths"
    assert re.search(r"\[1\] [A-Z].*\[2\] [A-Z].*\[10\] [A-Z]", text), "no bibliography of 10 or more entries"


def test_no_missing_glyphs():
    assert LOG.exists(), f"no LaTeX log next to the PDF ({LOG})"
    log = LOG.read_text(encoding="utf8", errors="replace")
    missing = sorted(set(re.findall(r"Missing character: There is no (.+?) in font", log)))
    assert not missing, f"glyphs missing from the fonts: {missing} (map them in _config.yml's latex_elements)"
    assert "\u2705" in _text(), "the checkers' ✅ is not in the PDF's text"


def test_figures_embedded():
    listing = _run("pdfimages", "-list", str(PDF)).splitlines()[2:]
    pages = {line.split()[0] for line in listing if line.split()[2] == "image"}
    assert len(pages) >= MIN_PAGES_WITH_IMAGES, f"only {len(pages)} pages carry an image"


def test_site_links_the_pdf():
    """Where the built site carries the PDF, its download menu links it (_ext/book_pdf.py)."""
    if not (SITE / "book.pdf").exists():
        pytest.skip(f"the site ({SITE}) has no copy of the PDF: make pdf updates a built site")
    page = (SITE / "intro.html").read_text(encoding="utf8")
    assert 'href="book.pdf"' in page and "btn-download-book-pdf-button" in page


def test_every_reference_resolves():
    """A cross-reference LaTeX cannot resolve prints as "??" in the PDF."""
    assert LOG.exists(), f"no LaTeX log next to the PDF ({LOG})"
    log = LOG.read_text(encoding="utf8", errors="replace")
    joined = log.replace("\n", "")  # TeX wraps its log at 79 characters
    undefined = sorted(set(re.findall(r"Reference `([^']+)' on page \d+ undefined", joined)))
    assert not undefined and "There were undefined references" not in log, (
        f"references the PDF cannot resolve: {undefined}")
