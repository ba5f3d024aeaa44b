"""Write a full-page PNG of every page of the built book, for a person to look at.

Every page is taken in light and dark mode, on a desktop screen (1280 px wide) and on a
phone (390 px wide).

Usage: ``make screenshots`` (after ``make book``); the PNGs land in ``screenshots/``.
``python scripts/screenshots.py --help`` lists options to narrow it down (pages, modes, widths).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import SITE  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from site_helpers import CHROMIUM_ARGS, chromium_path, serve, toc_pages  # noqa: E402

WIDTHS = (1280, 390)
MODES = ("light", "dark")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots", help="folder for the PNGs")
    parser.add_argument("--page", action="append", dest="pages",
                        help="only this page (e.g. chapters/02_mixup.html); repeat for more")
    parser.add_argument("--mode", action="append", dest="modes", choices=MODES, help="only this colour mode")
    parser.add_argument("--width", action="append", dest="widths", type=int,
                        help=f"only this viewport width in px (default {', '.join(map(str, WIDTHS))})")
    parser.add_argument("--viewport", action="store_true", help="only the first screen, not the full page")
    args = parser.parse_args(argv)

    if not (SITE / "index.html").exists():
        print("The book is not built: run `make book` first.", file=sys.stderr)
        return 1
    path = chromium_path()
    if path is None:
        print("Chromium is not installed: run `make browser` first.", file=sys.stderr)
        return 1
    pages = args.pages or [p for p in toc_pages() if (SITE / p).exists()] + ["search.html?q=manifold"]
    args.out.mkdir(parents=True, exist_ok=True)
    with serve(SITE) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        for mode in args.modes or MODES:
            for width in args.widths or WIDTHS:
                context = browser.new_context(color_scheme=mode, viewport={"width": width, "height": 900})
                context.add_init_script(
                    f"localStorage.setItem('mode', '{mode}'); localStorage.setItem('theme', '{mode}');")
                for page_path in pages:
                    page = context.new_page()
                    page.goto(url + page_path, wait_until="networkidle")
                    page.wait_for_timeout(600)
                    name = page_path.replace("/", "_").replace(".html", "").replace("?q=", "_")
                    target = args.out / f"{name}-{mode}-{width}.png"
                    page.screenshot(path=str(target), full_page=not args.viewport)
                    print(target)
                    page.close()
                context.close()
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
