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
"""

from __future__ import annotations

import re

from sphinx.application import Sphinx
from sphinx.config import Config

_BIBLIOENTRY = re.compile(r'(<div class="citation"[^>]*\brole=")doc-biblioentry(")')


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


def _one_search_box(app: Sphinx, config: Config) -> None:
    options = dict(config.html_theme_options or {})
    options.setdefault("navbar_persistent", [])
    config.html_theme_options = options


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _one_search_box)
    app.connect("html-page-context", _drop_thebe, priority=900)
    app.connect("html-page-context", _bibliography_entries_are_list_items, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
