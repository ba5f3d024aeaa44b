"""The built website in a real browser: every page loads offline, cleanly, with its maths rendered."""

from __future__ import annotations

import pytest
from conftest import SITE
from site_helpers import browser, site_url, toc_pages, visit  # noqa: F401 - fixtures

PAGES = toc_pages()


@pytest.mark.parametrize("page_path", PAGES)
def test_page_loads_offline_with_a_clean_console(browser, site_url, page_path):  # noqa: F811
    page, record = visit(browser, site_url + page_path)
    try:
        assert record.status == 200, f"{page_path}: HTTP {record.status}"
        assert not record.external_requests, f"{page_path} contacted other hosts: {record.external_requests}"
        assert not record.failed_requests, f"{page_path}: failed requests {record.failed_requests}"
        assert not record.page_errors, f"{page_path}: uncaught errors {record.page_errors}"
        assert not record.console_errors, f"{page_path}: console errors {record.console_errors}"
    finally:
        page.close()


@pytest.mark.parametrize("page_path", PAGES)
def test_maths_is_rendered_by_the_bundled_mathjax(browser, site_url, page_path):  # noqa: F811
    html = (SITE / page_path).read_text()
    has_math = 'class="math' in html
    page, _ = visit(browser, site_url + page_path)
    try:
        rendered = page.locator("mjx-container").count()
        if has_math:
            assert rendered > 0, f"{page_path} has maths but MathJax rendered none"
        prose = page.locator("article").inner_text()
        for raw in ("$$", "\\begin{", "\\frac", "\\mathbb"):
            assert raw not in prose, f"{page_path}: unrendered TeX {raw!r} in the prose"
    finally:
        page.close()


def _content_images(page):
    return page.locator("article img")


@pytest.mark.parametrize("page_path", PAGES)
def test_every_image_loads_and_has_alt_text_saying_what_it_shows(browser, site_url, page_path):  # noqa: F811
    page, _ = visit(browser, site_url + page_path)
    try:
        images = _content_images(page)
        for i in range(images.count()):
            img = images.nth(i)
            img.scroll_into_view_if_needed()
            src = img.get_attribute("src") or ""
            loaded = img.evaluate("el => el.complete && el.naturalWidth > 0")
            assert loaded, f"{page_path}: image {src} did not load"
            alt = (img.get_attribute("alt") or "").strip()
            assert len(alt.split()) >= 4, f"{page_path}: image {src} has no descriptive alt text ({alt!r})"
            assert not alt.lower().endswith((".png", ".svg", ".jpg")) and "_images/" not in alt, (
                f"{page_path}: alt text of {src} is a file name ({alt!r})")
    finally:
        page.close()


CHAPTERS = [p for p in PAGES if p.startswith("chapters/") and (SITE / p).exists()
            and (SITE / "_sources" / p.replace(".html", ".ipynb")).exists()]


@pytest.mark.parametrize("page_path", CHAPTERS)
def test_solutions_are_hidden_until_clicked(browser, site_url, page_path):  # noqa: F811
    page, _ = visit(browser, site_url + page_path)
    try:
        solutions = page.locator("div.solution.dropdown")
        assert solutions.count() >= 2, f"{page_path}: expected exercise solutions, found {solutions.count()}"
        for i in range(solutions.count()):
            solution = solutions.nth(i)
            body = solution.locator("section").first
            solution.scroll_into_view_if_needed()
            assert not body.is_visible(), f"{page_path}: solution {i + 1} is visible before it is clicked"
            # the reader's control: the toggle button drawn in the title (the title text itself
            # is mostly a link back to the exercise)
            solution.locator(".admonition-title button.toggle-button").first.click()
            body.wait_for(state="visible", timeout=3000)
            assert body.is_visible(), f"{page_path}: solution {i + 1} did not open when clicked"
    finally:
        page.close()


@pytest.mark.parametrize("page_path", CHAPTERS)
def test_notebook_download_is_a_valid_notebook(browser, site_url, page_path):  # noqa: F811
    nbformat = pytest.importorskip("nbformat")
    page, _ = visit(browser, site_url + page_path)
    try:
        links = page.locator("a[href$='.ipynb']")
        assert links.count() >= 1, f"{page_path}: no notebook download link"
        href = links.first.get_attribute("href")
        response = page.request.get(page.url.rsplit("/", 1)[0] + "/" + href)
        assert response.status == 200, f"{page_path}: download {href} gave HTTP {response.status}"
        notebook = nbformat.reads(response.text(), as_version=4)
        nbformat.validate(notebook)
        assert any(cell.cell_type == "code" for cell in notebook.cells)
    finally:
        page.close()


def test_search_finds_manifold(browser, site_url):  # noqa: F811
    page, record = visit(browser, site_url + "search.html?q=manifold", settle_ms=300)
    try:
        results = page.locator("#search-results ul.search li")
        results.first.wait_for(timeout=10_000)
        assert results.count() >= 2, "searching for 'manifold' should find several pages"
        assert not record.console_errors and not record.external_requests
    finally:
        page.close()


def _luminance_stats(png: bytes) -> tuple[float, float]:
    """Median luminance (0..1) of a screenshot's outer frame, and its darkest 1 % overall."""
    import io

    import numpy as np
    from PIL import Image

    gray = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float) / 255
    h, w = gray.shape
    b = max(2, min(h, w) // 40)
    frame = np.concatenate([gray[:b].ravel(), gray[-b:].ravel(), gray[:, :b].ravel(), gray[:, -b:].ravel()])
    return float(np.median(frame)), float(np.percentile(gray, 1))


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_figures_stay_readable_in_both_themes(browser, site_url, mode):  # noqa: F811
    chapter = next((p for p in CHAPTERS if "<img" in (SITE / p).read_text()), None)
    assert chapter is not None, "no chapter with figures"
    page, record = visit(browser, site_url + chapter, color_scheme=mode)
    try:
        # use the reader's control: the theme button in the header cycles light -> dark -> auto
        toggle = page.locator("button.theme-switch-button").first
        for _ in range(3):
            if page.evaluate("document.documentElement.dataset.mode") == mode:
                break
            toggle.click()
        assert page.evaluate("document.documentElement.dataset.mode") == mode
        assert page.evaluate("document.documentElement.dataset.theme") == mode
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        images = _content_images(page)
        assert images.count() > 0
        for i in range(images.count()):
            img = images.nth(i)
            img.scroll_into_view_if_needed()
            card, ink = _luminance_stats(img.screenshot())
            # the figure keeps a light card with dark ink on it, whatever the page colour
            assert card > 0.6 and ink < 0.35, (
                f"{chapter} ({mode}, page background {background}): figure {i + 1} has a frame of luminance "
                f"{card:.2f} and darkest ink {ink:.2f}: low contrast")
    finally:
        page.close()


@pytest.mark.parametrize("page_path", PAGES)
def test_display_maths_and_tables_fit_the_text_column(browser, site_url, page_path):  # noqa: F811
    page, _ = visit(browser, site_url + page_path)
    try:
        page.wait_for_function("() => !document.querySelector('div.math:not(:has(mjx-container))')",
                               timeout=10_000)
        too_wide = page.evaluate("""() => {
            const column = document.querySelector('article').clientWidth;
            const out = [];
            for (const el of document.querySelectorAll('article div.math mjx-container, article table')) {
                const width = el.getBoundingClientRect().width;
                const math = el.querySelector('mjx-math');
                const inner = Math.max(el.scrollWidth, math ? math.getBoundingClientRect().width : 0);
                // the maths must fit its own box (which leaves room for the equation number),
                // and every box must fit the column
                if (inner > width + 1 || width > column + 1) {
                    out.push(`${el.tagName.toLowerCase()} ${Math.round(Math.max(width, inner))}px: `
                             + el.textContent.slice(0, 60));
                }
            }
            return out;
        }""")
        assert not too_wide, f"{page_path}: wider than the text column: {too_wide}"
    finally:
        page.close()
