"""Local Sphinx extension: keep the built site offline, its console clean and its pages accessible.

* sphinx-thebe (loaded by Jupyter Book whatever the config says) injects an inline
  script declaring ``const THEBE_JS_URL`` and a script that may fetch thebe from a CDN.
  The book has no live-code launcher, so both are removed from every page.
* One search box per page: the book theme already offers search in the sidebar (and, on a
  narrow screen, as a button in the page's header), so the PyData theme's extra search field
  in the top bar is left out, and with it the otherwise empty top bar.
* The bibliography's entries carry ``role="doc-biblioentry"``, a role that ARIA 1.3
  deprecates; inside the ``role="list"`` that holds them, screen readers and axe expect list
  items. They are marked ``role="listitem"``.
* A solution's title is the control that opens it (sphinx-togglebutton makes the whole title
  clickable), but sphinx-exercise makes most of its text a link back to the exercise, so a tap
  on the title jumped up the page instead. The title becomes plain text ("Solution to
  Exercise 4.1 (...)") followed by a small separate link back to the exercise.
* Printed tables (lines of columns aligned with spaces, as ``mixlib.stats.render_table`` and
  most cells print them) are marked ``class="text-table"``: custom.css keeps their lines
  whole, so they scroll sideways in their box, where other long printed lines wrap.
"""

from __future__ import annotations

import html
import re

from sphinx.application import Sphinx
from sphinx.config import Config

_BIBLIOENTRY = re.compile(r'(<div class="citation"[^>]*\brole=")doc-biblioentry(")')

# sphinx-exercise's title of a solution shown as a dropdown: "Solution to" and a link whose text
# is the exercise's number and title.
_SOLUTION_TITLE = re.compile(
    r'(<div class="solution\b[^"]*\bdropdown\b[^"]*"[^>]*>\s*<p class="admonition-title">)'
    r'([^<]*)<a class="reference internal" href="([^"]*)">((?:(?!</a>|</p>).)*)</a>\s*</p>', re.S)

# A cell's printed output (a stream, or a plain-text result).
_PRINTED = re.compile(r'(<div class="output (?:stream|text_plain)\b[^"]*"[^>]*>\s*<div class="highlight">\s*<pre)'
                      r'(>)(.*?)(</pre>)', re.S)
_COLUMN_GAP = re.compile(r"\S {2,}\S")


def _drop_thebe(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    kept = []
    for script in scripts:
        filename = getattr(script, "filename", None) or ""
        body = getattr(script, "attributes", {}).get("body", "")
        if "thebe" in filename or "THEBE_JS_URL" in body:
            continue
        kept.append(script)
    context["script_files"] = kept


def _bibliography_entries_are_list_items(app: Sphinx, pagename: str, templatename: str, context: dict,
                                         doctree) -> None:
    body = context.get("body")
    if body and "doc-biblioentry" in body:
        context["body"] = _BIBLIOENTRY.sub(r"\1listitem\2", body)


def _solution_title(match: re.Match) -> str:
    start, before, href, text = match.groups()
    words = " ".join(part for part in (before.strip(), text.strip()) if part)
    return (f'{start}{words} <a class="reference internal solution-backlink" href="{href}">'
            "back to the exercise</a></p>")


def solution_titles_open_solutions(body: str) -> str:
    """Make each dropdown solution's title plain text with a small link back to its exercise."""
    return _SOLUTION_TITLE.sub(_solution_title, body)


def is_text_table(text: str) -> bool:
    """Whether printed ``text`` is a table: at least two lines, and at least half of its lines,
    hold columns (two or more spaces between words)."""
    lines = [line for line in text.splitlines() if line.strip()]
    gapped = sum(1 for line in lines if _COLUMN_GAP.search(line))
    return gapped >= 2 and 2 * gapped >= len(lines)


def _mark_text_table(match: re.Match) -> str:
    start, close, inner, end = match.groups()
    if is_text_table(html.unescape(re.sub(r"<[^>]*>", "", inner))):
        close = ' class="text-table">'
    return f"{start}{close}{inner}{end}"


def mark_text_tables(body: str) -> str:
    """Mark each printed table (see :func:`is_text_table`) ``<pre class="text-table">``."""
    return _PRINTED.sub(_mark_text_table, body)


def _solutions_and_printed_tables(app: Sphinx, pagename: str, templatename: str, context: dict,
                                  doctree) -> None:
    body = context.get("body")
    if body:
        context["body"] = mark_text_tables(solution_titles_open_solutions(body))


def _one_search_box(app: Sphinx, config: Config) -> None:
    options = dict(config.html_theme_options or {})
    options.setdefault("navbar_persistent", [])
    config.html_theme_options = options


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _one_search_box)
    app.connect("html-page-context", _drop_thebe, priority=900)
    app.connect("html-page-context", _bibliography_entries_are_list_items, priority=900)
    app.connect("html-page-context", _solutions_and_printed_tables, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
