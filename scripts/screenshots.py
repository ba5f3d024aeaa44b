"""Write a full-page PNG of every page of the built book, in light and dark mode, for a person to look at.

Usage: ``make screenshots`` (after ``make book``); the PNGs land in ``screenshots/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import SITE  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from site_helpers import CHROMIUM_ARGS, chromium_path, serve, toc_pages  # noqa: E402


def main(out_dir: Path = ROOT / "screenshots") -> int:
    if not (SITE / "index.html").exists():
        print("The book is not built: run `make book` first.", file=sys.stderr)
        return 1
    path = chromium_path()
    if path is None:
        print("Chromium is not installed: run `make browser` first.", file=sys.stderr)
        return 1
    out_dir.mkdir(exist_ok=True)
    with serve(SITE) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        for mode in ("light", "dark"):
            context = browser.new_context(color_scheme=mode, viewport={"width": 1280, "height": 900})
            context.add_init_script(f"localStorage.setItem('mode', '{mode}'); localStorage.setItem('theme', '{mode}');")
            for page_path in toc_pages() + ["search.html?q=manifold"]:
                page = context.new_page()
                page.goto(url + page_path, wait_until="networkidle")
                page.wait_for_timeout(600)
                name = page_path.replace("/", "_").replace(".html", "").replace("?q=", "_")
                target = out_dir / f"{name}-{mode}.png"
                page.screenshot(path=str(target), full_page=True)
                print(target.relative_to(ROOT))
                page.close()
            context.close()
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
