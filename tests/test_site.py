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
