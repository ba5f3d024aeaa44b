"""Run-time budgets the book promises, read from the build's own execution table."""

from __future__ import annotations

import re

import pytest
from conftest import SITE

# Seconds of the CI build per chapter. Parts I-II are courses to work through in a sitting: 45 s each.
# Part III runs the longest experiments.
BUDGETS = {"01_erm_vicinal_risk": 45.0, "02_mixup": 45.0, "03_manifold_mixup": 45.0,
           "04_gradient_expansion": 45.0, "05_input_vs_manifold": 45.0,
           "06_why_does_it_work": 150.0, "07_explicit_flattening": 120.0}


def _run_times() -> dict[str, float]:
    page = SITE / "chapters" / "status.html"
    if not page.exists():
        pytest.fail(f"{page} is missing: `make book` builds the site before the tests run")
    html = page.read_text()
    rows = re.findall(r'<span class="doc">chapters/([^<]+)</span>.*?</td>\s*<td><p>[^<]*</p></td>\s*'
                      r'<td><p>[^<]*</p></td>\s*<td><p>([0-9.]+)</p></td>', html, flags=re.S)
    return {name: float(seconds) for name, seconds in rows}


@pytest.mark.parametrize("chapter", list(BUDGETS))
def test_chapter_runs_within_its_budget(chapter):
    times = _run_times()
    assert chapter in times, f"no run time for {chapter} in the status page (found {sorted(times)})"
    assert times[chapter] <= BUDGETS[chapter], (
        f"{chapter} ran {times[chapter]:.0f} s in the build, over its budget of {BUDGETS[chapter]:.0f} s")


def test_the_status_table_is_read():
    from conftest import ROOT
    pages = len(list((ROOT / "chapters").glob("[0-9]*.ipynb"))) + len(list((ROOT / "chapters/further").glob("*.ipynb")))
    assert len(_run_times()) == pages
