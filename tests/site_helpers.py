"""Serve the built site on 127.0.0.1 and drive Debian's Chromium with Playwright."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from conftest import ROOT, SITE

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def chromium_path() -> str | None:
    """Debian's Chromium, if installed."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def require(condition: bool, reason: str) -> None:
    """Skip locally, but fail in CI: CI must never silently skip the site tests."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def toc_pages() -> list[str]:
    """The HTML page of every entry of the table of contents, root first."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [toc["root"]] + [ch["file"] for part in toc.get("parts", []) for ch in part["chapters"]]
    return [entry + ".html" for entry in entries]


def require_page(page_path: str) -> None:
    """Skip a page that the site under test lacks (a partial copy named by BOOK_SITE); fail in CI."""
    page = page_path.split("?", 1)[0]
    require((SITE / page).exists(), f"{page} is not in the site under test ({SITE})")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on a free port of 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class PageVisit:
    """What happened while a page loaded."""

    url: str
    status: int | None = None
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)


#: Viewport widths the site is checked at: a desktop screen and a phone.
DESKTOP, PHONE = 1280, 390


def visit(browser, url: str, *, settle_ms: int = 800, color_scheme: str = "light", width: int = DESKTOP):
    """Open ``url`` in a fresh page, record errors and requests; returns ``(page, PageVisit)``.

    The page is ``width`` CSS pixels wide. ``color_scheme`` is what the browser reports; the
    theme follows it (its default mode is "auto") until the reader picks a mode.
    """
    page = browser.new_page(color_scheme=color_scheme, viewport={"width": width, "height": 900})
    record = PageVisit(url)
    host = urlparse(url).hostname

    def on_request(request) -> None:
        parsed = urlparse(request.url)
        if parsed.scheme in ("data", "blob", "about"):
            return
        if parsed.hostname != host:
            record.external_requests.append(request.url)

    page.on("request", on_request)
    page.on("console", lambda m: record.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: record.page_errors.append(str(e)))
    page.on("requestfailed", lambda r: record.failed_requests.append(r.url))
    page.on("response", lambda r: record.failed_requests.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    response = page.goto(url, wait_until="networkidle")
    record.status = response.status if response else None
    page.wait_for_timeout(settle_ms)
    return page, record


@pytest.fixture(scope="session")
def site_url() -> Iterator[str]:
    require((SITE / "index.html").exists(), f"the book is not built: run `make book` (no {SITE / 'index.html'})")
    with serve(SITE) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    require(path is not None, "Chromium is not installed (make browser installs Debian's package)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


#: axe-core rules left out of the accessibility test, each because the theme (not the book)
#: produces what it flags and the book cannot change it. Keep this list short.
AXE_EXCLUDED: dict[str, str] = {}

#: The impact levels that fail the accessibility test.
AXE_FAILING = ("serious", "critical")


def axe_violations(page) -> list[dict]:
    """Run axe-core (bundled with axe-playwright-python, so offline) on ``page``.

    Returns the violations of every rule not in :data:`AXE_EXCLUDED`, each as a dict with the
    rule ``id``, its ``impact``, ``help`` text and the CSS ``targets`` of the offending nodes.
    """
    axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")
    options = {"resultTypes": ["violations"]}
    if AXE_EXCLUDED:
        options["rules"] = {rule: {"enabled": False} for rule in AXE_EXCLUDED}
    response = axe_module.Axe().run(page, options=options).response
    return [
        {
            "id": v["id"],
            "impact": v.get("impact"),
            "help": v.get("help", ""),
            "targets": [" ".join(map(str, node.get("target", []))) for node in v.get("nodes", [])],
            "summaries": [node.get("failureSummary", "") for node in v.get("nodes", [])],
        }
        for v in response.get("violations", [])
    ]
