"""Local Sphinx extension: keep the built site offline and its console clean.

* sphinx-thebe (loaded by Jupyter Book whatever the config says) injects an inline
  script declaring ``const THEBE_JS_URL`` and a script that may fetch thebe from a CDN.
  The book has no live-code launcher, so both are removed from every page.
"""

from __future__ import annotations

from sphinx.application import Sphinx


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


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", _drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
