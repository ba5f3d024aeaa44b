"""The built website in a real browser: every page loads offline, cleanly, with its maths rendered."""

from __future__ import annotations

import pytest
from conftest import SITE
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from site_helpers import (  # noqa: F401 - fixtures
    AXE_EXCLUDED,
    AXE_FAILING,
    DESKTOP,
    PHONE,
    axe_violations,
    browser,
    require_page,
    site_url,
    toc_pages,
    visit,
)

PAGES = toc_pages()


@pytest.mark.parametrize("page_path", PAGES)
def test_page_loads_offline_with_a_clean_console(browser, site_url, page_path):  # noqa: F811
    require_page(page_path)
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
    require_page(page_path)
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
    require_page(page_path)
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


# Measures every display formula, its equation number (Sphinx's span.eqno, or MathJax's own
# tag) and every table against the text column. Returns a list of problems, one string each.
_MEASURE_MATHS_AND_TABLES = """(phone) => {
    const column = document.querySelector('article').getBoundingClientRect();
    const out = [];
    const text = (el) => el.textContent.replace(/\\s+/g, ' ').trim().slice(0, 60);
    const overlap = (a, b) => a.width > 0 && b.width > 0 && a.left < b.right - 1 && b.left < a.right - 1
                              && a.top < b.bottom - 1 && b.top < a.bottom - 1;
    const scrolls = (el) => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
    for (const box of document.querySelectorAll('article div.math mjx-container')) {
        const r = box.getBoundingClientRect();
        const math = box.querySelector('mjx-math');
        const inner = Math.max(box.scrollWidth, math ? math.getBoundingClientRect().width : 0);
        if (r.left < column.left - 1 || r.right > column.right + 1) {
            out.push(`formula box ${Math.round(r.width)}px sticks out of the column: ${text(box)}`);
        }
        if (inner > r.width + 1 && (!phone || !scrolls(box))) {
            // on a desktop every formula fits its box; on a phone a long one may scroll inside it
            out.push(`formula ${Math.round(inner)}px wider than its ${Math.round(r.width)}px box: ${text(box)}`);
        }
        const number = box.parentElement.querySelector(':scope > span.eqno');
        if (number && overlap(number.getBoundingClientRect(), r)) {
            out.push(`equation number ${text(number)} overlaps its formula: ${text(box)}`);
        }
        for (const tag of box.querySelectorAll('mjx-labels')) {
            const table = tag.parentElement.querySelector('mjx-itable') || math;
            if (table && overlap(tag.getBoundingClientRect(), table.getBoundingClientRect())) {
                out.push(`equation tag ${text(tag)} overlaps its formula: ${text(box)}`);
            }
        }
    }
    for (const table of document.querySelectorAll('article table')) {
        // a wide table may scroll inside a container of the column's width, never widen the page
        let frame = table;
        while (frame !== document.body && !scrolls(frame)) frame = frame.parentElement;
        const r = (frame === document.body ? table : frame).getBoundingClientRect();
        if (r.right > column.right + 1 || r.left < column.left - 1) {
            out.push(`table ${Math.round(table.getBoundingClientRect().width)}px: ${text(table)}`);
        }
    }
    if (document.documentElement.scrollWidth > window.innerWidth + 1) {
        out.push(`the page is ${document.documentElement.scrollWidth}px wide on a ${window.innerWidth}px screen`);
    }
    return out;
}"""


@pytest.mark.parametrize("width", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("page_path", PAGES)
def test_display_maths_and_tables_fit_the_text_column(browser, site_url, page_path, width):  # noqa: F811
    """Every formula fits the column (on a phone, a long one scrolls in its own box) and no
    equation number covers any part of its formula."""
    require_page(page_path)
    page, _ = visit(browser, site_url + page_path, width=width)
    try:
        page.wait_for_function("() => !document.querySelector('div.math:not(:has(mjx-container))')",
                               timeout=10_000)
        problems = page.evaluate(_MEASURE_MATHS_AND_TABLES, width == PHONE)
        assert not problems, f"{page_path} at {width}px: {problems}"
    finally:
        page.close()


_SEARCH_CONTROLS = "button.search-button__button, input[type='search'], form[role='search'] input"


@pytest.mark.parametrize("width", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("page_path", PAGES + ["search.html"])
def test_one_search_box_per_page(browser, site_url, page_path, width):  # noqa: F811
    require_page(page_path)
    page, _ = visit(browser, site_url + page_path, width=width)
    try:
        controls = page.locator(_SEARCH_CONTROLS)
        visible = [controls.nth(i).evaluate("el => el.outerHTML.slice(0, 80)")
                   for i in range(controls.count()) if controls.nth(i).is_visible()]
        assert len(visible) == 1, f"{page_path} at {width}px shows {len(visible)} search boxes: {visible}"
    finally:
        page.close()


# Every page on a desktop in light mode. Dark mode changes colours, not components, so it is
# checked on pages that between them hold every kind of box the book uses (theorems and proofs,
# exercises and solutions, admonitions, tables, code and outputs) and on the search results.
# The phone layout (its header buttons and menu drawers, the same on every page) is checked on
# the first page. axe's contrast check takes several seconds on a long page, hence the sample.
_DARK_SAMPLE = [p for p in PAGES if p.startswith(("intro", "chapters/04_", "chapters/06_"))]
_AXE_VIEWS = [(page, "light", DESKTOP) for page in PAGES + ["search.html?q=manifold"]]
_AXE_VIEWS += [(page, "dark", DESKTOP) for page in _DARK_SAMPLE + ["search.html?q=manifold"]]
_AXE_VIEWS.append((PAGES[0], "light", PHONE))


_SCROLLABLE_HAVE_TAB_STOPS = """() => [...document.querySelectorAll(
    "pre, .cell_output > .output, .pst-scrollable-table-container")].every(
    e => !(e.scrollWidth > e.clientWidth || e.scrollHeight > e.clientHeight) || e.tabIndex === 0)"""


@pytest.mark.parametrize(("page_path", "mode", "width"), _AXE_VIEWS,
                         ids=[f"{p}-{m}-{w}" for p, m, w in _AXE_VIEWS])
def test_no_serious_accessibility_violations(browser, site_url, page_path, mode, width):  # noqa: F811
    """axe-core finds no serious or critical violation (colour contrast, ARIA, names, ...)."""
    require_page(page_path)
    page, _ = visit(browser, site_url + page_path, color_scheme=mode, width=width)
    try:
        assert page.evaluate("document.documentElement.dataset.theme") == mode
        # The theme gives every region that scrolls a tab stop, on a 300 ms debounce after the
        # layout settles; on a busy machine that can come after the visit's settling time. Wait
        # for it (at most 10 s): if it never comes, axe below reports the regions by name.
        try:
            page.wait_for_function(_SCROLLABLE_HAVE_TAB_STOPS, timeout=10_000)
        except PlaywrightTimeout:
            pass
        violations = [v for v in axe_violations(page) if v["impact"] in AXE_FAILING]
        report = [f"{v['impact']} {v['id']} ({v['help']}) at {v['targets'][:5]}: {v['summaries'][:1]}"
                  for v in violations]
        assert not violations, f"{page_path} ({mode}, {width}px): {report}"
    finally:
        page.close()


def test_axe_exclusions_are_explained():
    for rule, reason in AXE_EXCLUDED.items():
        assert len(reason.split()) >= 8, f"axe rule {rule} is left out without a reason"


@pytest.mark.parametrize("page_path", CHAPTERS)
def test_figures_are_sharp_and_shown_at_full_size(browser, site_url, page_path):  # noqa: F811
    """Every figure has at least 1.5 image pixels per screen pixel (150 dpi at the book's 100 px
    per inch) or is an SVG, and on a desktop the page does not shrink it, so the text in it keeps
    the size it was drawn at (at least 9 pt)."""
    page, _ = visit(browser, site_url + page_path, width=DESKTOP)
    try:
        images = page.locator("article div.cell_output img")
        problems = []
        for i in range(images.count()):
            img = images.nth(i)
            img.scroll_into_view_if_needed()
            src, natural, shown, wanted = img.evaluate("""el => [el.getAttribute('src'), el.naturalWidth,
                el.getBoundingClientRect().width, parseFloat(el.style.width) || el.naturalWidth]""")
            if src.lower().endswith(".svg"):
                continue
            if natural < 1.5 * shown - 1:
                problems.append(f"{src}: {natural} image pixels shown over {shown:.0f} screen pixels")
            if shown < 0.97 * wanted:
                problems.append(f"{src}: drawn {wanted:.0f}px wide but shrunk to {shown:.0f}px")
        assert not problems, f"{page_path}: {problems}"
    finally:
        page.close()
