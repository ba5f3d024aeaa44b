"""The built website in a real browser: every page loads offline, cleanly, with its maths rendered."""

from __future__ import annotations

import re

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


def _offline_theme():
    """The book's local Sphinx extension _ext/offline_theme.py, imported from its file."""
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("offline_theme", ROOT / "_ext" / "offline_theme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_solution_titles_become_plain_text_with_a_small_link_back():
    """The rewrite of sphinx-exercise's solution titles, on the HTML it writes (no build needed)."""
    ext = _offline_theme()
    dropdown = ('<div class="solution dropdown admonition" id="s1">\n\n<p class="admonition-title">Solution to'
                '<a class="reference internal" href="#ex-1"> Exercise 4.1 (The map <span class="math">\\(F\\)</span>)'
                '</a></p>\n<section id="solution-content">')
    assert ext.solution_titles_open_solutions(dropdown) == (
        '<div class="solution dropdown admonition" id="s1">\n\n<p class="admonition-title">Solution to '
        'Exercise 4.1 (The map <span class="math">\\(F\\)</span>) <a class="reference internal solution-backlink" '
        'href="#ex-1">back to the exercise</a></p>\n<section id="solution-content">')
    # a solution shown open (no dropdown) keeps its title; a title of another shape is left alone
    shown = dropdown.replace("solution dropdown admonition", "solution admonition")
    assert ext.solution_titles_open_solutions(shown) == shown
    odd = dropdown.replace("</a></p>", "</a> (odd)</p><p>x</p><a class='y'>z</a></p>")
    assert ext.solution_titles_open_solutions(odd) == odd


def test_printed_tables_are_told_from_other_printed_lines():
    ext = _offline_theme()
    table = "method        difference [95 %]  verdict\nERM vs mixup  +0.01 [0.0, 0.02]      same\nfooter line\n"
    assert ext.is_text_table(table)
    assert not ext.is_text_table("ERM: final training loss 0.0003\nmixup: final training loss 0.2\n")
    assert not ext.is_text_table("one line  with  gaps\n")
    assert not ext.is_text_table("StagedNet(\n  (layers): ModuleList(\n    (0): Linear(in=2, out=16)\n  )\n)\n")
    out = ('<div class="output stream highlight-myst-ansi notranslate"><div class="highlight"><pre>'
           '<span></span>{}</pre></div>')
    assert ext.mark_text_tables(out.format(table)) == out.format(table).replace("<pre>", '<pre class="text-table">')
    assert ext.mark_text_tables(out.format("a long line of prose\n")) == out.format("a long line of prose\n")


# The viewport points at the middle of each line of a solution title's words: its own text, and
# text in any element in it, except the toggle button and the small link back to the exercise.
_TITLE_WORD_POINTS = """title => {
    const points = [];
    const walker = document.createTreeWalker(title, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (!node.textContent.trim() || node.parentElement.closest('button, a.solution-backlink')) continue;
        const range = document.createRange();
        range.selectNodeContents(node);
        for (const r of range.getClientRects()) {
            if (r.width > 4) points.push([r.left + r.width / 2, r.top + r.height / 2]);
        }
    }
    return points;
}"""


# Every chapter has exercises with solutions; a "Going further" page may have none.
_WITH_SOLUTIONS = [p for p in CHAPTERS
                   if not p.startswith("chapters/further/") or 'class="solution' in (SITE / p).read_text()]


@pytest.mark.parametrize("page_path", _WITH_SOLUTIONS)
def test_solutions_are_hidden_until_their_title_is_tapped(browser, site_url, page_path):  # noqa: F811
    """On a phone, a tap on any word of a solution's title opens (and a second tap closes) the
    solution without moving the page; the link back to the exercise is a small separate element."""
    page, _ = visit(browser, site_url + page_path, width=PHONE)
    try:
        solutions = page.locator("div.solution.dropdown")
        expected = 1 if page_path.startswith("chapters/further/") else 2
        assert solutions.count() >= expected, f"{page_path}: expected exercise solutions, found {solutions.count()}"
        for i in range(solutions.count()):
            solution = solutions.nth(i)
            title = solution.locator(":scope > .admonition-title")
            body = solution.locator("section").first
            title.evaluate("e => e.scrollIntoView({block: 'center'})")   # clear of the sticky header
            assert not body.is_visible(), f"{page_path}: solution {i + 1} is visible before it is clicked"
            where = f"{page_path}: solution {i + 1} ({title.inner_text().splitlines()[0]!r})"
            points = title.evaluate(_TITLE_WORD_POINTS)
            assert points, f"{where}: no words in its title"
            for n, (x, y) in enumerate(points):
                before = page.evaluate("[window.scrollY, location.hash]")
                page.mouse.click(x, y)
                page.wait_for_timeout(50)
                should_open = n % 2 == 0
                try:
                    body.wait_for(state="visible" if should_open else "hidden", timeout=3000)
                except PlaywrightTimeout:
                    pass
                action = "open" if should_open else "close"
                assert body.is_visible() == should_open, (
                    f"{where}: a tap on its title at ({x:.0f}, {y:.0f}) did not {action} it")
                after = page.evaluate("[window.scrollY, location.hash]")
                assert after == before, f"{where}: a tap on its title moved the page from {before} to {after}"
            # the link back to the exercise: small, separate, and it leads to the exercise
            link = title.locator("a.solution-backlink")
            assert link.count() == 1, f"{where}: no link back to the exercise in its title"
            link_box, title_box = link.bounding_box(), title.bounding_box()
            assert link_box["width"] * link_box["height"] < 0.25 * title_box["width"] * title_box["height"], (
                f"{where}: the link back to the exercise covers much of the title")
            target = link.get_attribute("href")
            assert target.startswith("#") and page.locator(f"div.exercise{target}").count() == 1, (
                f"{where}: the link back leads to {target!r}, not to an exercise on the page")
        link = solutions.first.locator("a.solution-backlink")
        opened = solutions.first.locator("section").first.is_visible()
        link.click()
        page.wait_for_function("h => location.hash === h", arg=link.get_attribute("href"), timeout=3000)
        assert solutions.first.locator("section").first.is_visible() == opened, (
            f"{page_path}: following the link back to the exercise opened or closed the solution")
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


# The snippets under the search results, once every result that gets one has it.
_SEARCH_SNIPPETS = """() => {
    const items = [...document.querySelectorAll('#search-results ul.search li')];
    // a page's result gets a snippet (p.context); an API object's result gets its description (span)
    if (!items.length || !items.every(li => li.querySelector('p.context, span'))) return null;
    return items.map(li => [li.querySelector('a').textContent, li.querySelector('p.context')?.textContent])
                .filter(([, snippet]) => snippet !== undefined);
}"""


@pytest.mark.parametrize("width", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_search_finds_manifold_and_shows_text_around_it(browser, site_url, width):  # noqa: F811
    """Search finds several pages, and each page's snippet is text from the page, not its table
    of contents (which the theme prints before the article)."""
    page, record = visit(browser, site_url + "search.html?q=manifold", settle_ms=300, width=width)
    try:
        results = page.locator("#search-results ul.search li")
        results.first.wait_for(timeout=10_000)
        assert results.count() >= 2, "searching for 'manifold' should find several pages"
        snippets = page.wait_for_function(_SEARCH_SNIPPETS, timeout=15_000).json_value()
        assert len(snippets) >= 3, f"expected snippets under the pages found, got {snippets}"
        for title, snippet in snippets:
            numbers = re.findall(r"\b\d+\.\d+\.(?:\d+\.)? [A-Z]", snippet)
            assert "Contents" not in snippet and len(numbers) < 3, (
                f"the snippet under {title!r} is the page's table of contents: {snippet!r}")
            assert "manifold" in snippet.lower(), f"the snippet under {title!r} does not show the word: {snippet!r}"
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
# tag), every inline formula and every table against the text column, and checks that every box
# in the article that scrolls sideways shows a scroll cue (its hidden side fades: a CSS mask) and
# that no other box does. Returns a list of problems, one string each.
_MEASURE_MATHS_AND_TABLES = """async (phone) => {
    // the cues follow layout changes (MathJax, fonts) within a frame: let them settle
    for (let i = 0; i < 3; i++) await new Promise(requestAnimationFrame);
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
    for (const box of document.querySelectorAll('article mjx-container:not([display="true"])')) {
        // an inline formula cannot break: one wider than its paragraph must scroll in its own box
        const r = box.getBoundingClientRect();
        let block = box.parentElement;
        while (getComputedStyle(block).display.startsWith('inline')) block = block.parentElement;
        const room = block.getBoundingClientRect().right - parseFloat(getComputedStyle(block).paddingRight);
        if (r.width > 0 && r.right > room + 1) {
            out.push(`inline formula sticks out of its paragraph by ${Math.round(r.right - room)}px: ${text(box)}`);
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
    const masked = (el) => [getComputedStyle(el).maskImage, getComputedStyle(el).webkitMaskImage]
        .some(m => m && m.includes('gradient'));
    for (const el of document.querySelectorAll('article *:not(mjx-container *)')) {
        if (!scrolls(el) || el.clientWidth === 0) continue;
        const hidden = el.scrollWidth - el.clientWidth > 1;
        const what = `${el.tagName.toLowerCase()}.${[...el.classList].join('.')}`;
        if (hidden && !masked(el)) {
            out.push(`${what} scrolls sideways (${el.scrollWidth}px in ${el.clientWidth}px) with no cue: ${text(el)}`);
        } else if (!hidden && masked(el)) {
            out.push(`${what} fits its box but fades as if it scrolled: ${text(el)}`);
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
    equation number covers any part of its formula; whatever scrolls sideways shows a cue."""
    require_page(page_path)
    page, _ = visit(browser, site_url + page_path, width=width)
    try:
        page.wait_for_function("() => !document.querySelector('div.math:not(:has(mjx-container))')",
                               timeout=10_000)
        problems = page.evaluate(_MEASURE_MATHS_AND_TABLES, width == PHONE)
        assert not problems, f"{page_path} at {width}px: {problems}"
    finally:
        page.close()


# Scrolls ``box`` to its start, middle and end; at each, which sides are marked as hiding more
# (the classes _static/book.js sets) and whether the box is faded (the CSS mask they select).
_SCROLL_CUE_STATES = """async (box) => {
    const frame = () => new Promise(requestAnimationFrame);
    const end = box.scrollWidth - box.clientWidth;
    const states = {hidden: end};
    for (const [name, left] of [['start', 0], ['middle', end / 2], ['end', end]]) {
        box.scrollLeft = left;
        for (let i = 0; i < 3; i++) await frame();
        const style = getComputedStyle(box);
        states[name] = [box.classList.contains('scroll-more-left'), box.classList.contains('scroll-more-right'),
                        [style.maskImage, style.webkitMaskImage].some(m => m && m.includes('gradient'))];
    }
    const cells = box.querySelectorAll('th');
    if (cells.length) {
        // at the end, the last column is in view
        const last = cells[cells.length - 1].getBoundingClientRect(), r = box.getBoundingClientRect();
        states.lastColumnInView = last.left >= r.left - 1 && last.right <= r.right + 1;
    }
    states.whiteSpace = getComputedStyle(box).whiteSpace;
    return states;
}"""

# (page, scroll box, text it holds): the widest formula of chapter 4, chapter 6's verdict table
# (printed text) and the status page's table of notebook runs.
_WIDE_BOXES = [
    ("chapters/04_gradient_expansion.html", "div.math > mjx-container", ""),
    ("chapters/06_why_does_it_work.html", "div.cell_output pre", "p (differ)"),
    ("chapters/status.html", ".pst-scrollable-table-container", "Run Time"),
]


@pytest.mark.parametrize(("page_path", "selector", "holding"), _WIDE_BOXES, ids=[p for p, _, _ in _WIDE_BOXES])
def test_wide_formulas_and_tables_scroll_with_a_cue_on_a_phone(browser, site_url, page_path, selector, holding):  # noqa: F811
    """At 390 px a formula or table wider than the column scrolls in its own box; the side where
    more is hidden fades, and the cue follows the scrolling: right at the start, both sides in
    the middle, left at the end. A printed table keeps its lines whole."""
    require_page(page_path)
    page, _ = visit(browser, site_url + page_path, width=PHONE)
    try:
        page.wait_for_function("() => !document.querySelector('div.math:not(:has(mjx-container))')",
                               timeout=10_000)
        boxes = page.locator(f"article {selector}:visible")
        if holding:
            boxes = boxes.filter(has_text=holding)
        assert boxes.count() >= 1, f"{page_path}: no {selector} holding {holding!r}"
        widest = max(range(boxes.count()), key=lambda i: boxes.nth(i).evaluate("e => e.scrollWidth - e.clientWidth"))
        box = boxes.nth(widest)
        box.evaluate("e => e.scrollIntoView({block: 'center'})")
        where = f"{page_path} at {PHONE}px: {selector} " + repr(box.evaluate(
            "e => e.textContent.replace(/\\s+/g, ' ').trim().slice(0, 50)"))
        states = box.evaluate(_SCROLL_CUE_STATES)
        assert states["hidden"] > 1, f"{where} fits its column ({states}); this test expects one that does not"
        assert states["start"] == [False, True, True], f"{where}: at its start, no cue on the right: {states}"
        assert states["middle"] == [True, True, True], f"{where}: in the middle, no cue on both sides: {states}"
        assert states["end"] == [True, False, True], f"{where}: at its end, no cue on the left only: {states}"
        assert states.get("lastColumnInView", True), f"{where}: scrolled to its end, its last column is not in view"
        if selector.endswith("pre"):
            assert states["whiteSpace"] == "pre", f"{where}: a printed table wraps its lines ({states['whiteSpace']})"
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
