# Two commands do all the set-up (see README.md, "Quick start"):
#   make book   create .venv, install everything, build the book into _build/html
#   make test   also install the test tools and a browser, then run every test
# Both are safe to re-run: installs happen only when a requirements file changed.

SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --quiet --disable-pip-version-check
BOOK_STAMP := $(VENV)/.book-installed
TEST_STAMP := $(VENV)/.test-installed
# Progress bars are for people at a notebook, not for logs.
QUIET  := MIXLIB_PROGRESS=0 PYDEVD_DISABLE_FILE_VALIDATION=1

.PHONY: setup book test lint lab serve screenshots bench clean browser

setup: $(BOOK_STAMP)

$(BOOK_STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt -e . 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(BIN)/python -c "import torch, mixlib, jupyter_book, sphinx_exercise" 
	touch $@

$(TEST_STAMP): $(BOOK_STAMP) requirements-test.txt
	$(PIP) install -r requirements-test.txt 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(BIN)/python -c "import pytest, nbval, hypothesis, playwright" 
	touch $@

## Build the book into _build/html (strict: any warning or notebook error fails).
book: $(BOOK_STAMP)
	$(QUIET) $(BIN)/jupyter-book build . -W -n --keep-going

## Debian's Chromium for the browser tests (never a browser download).
browser:
	@command -v chromium >/dev/null || test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); \
	  else echo "Chromium not found and cannot be installed here: browser tests will be skipped."; fi; }

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

## Everything CI checks: lint, the strict build, library and site tests, every notebook.
test: $(TEST_STAMP) browser lint book
	$(QUIET) $(BIN)/python -m pytest

## Run the notebooks yourself in JupyterLab.
lab: $(BOOK_STAMP)
	$(BIN)/jupyter lab chapters/

## Serve the built site on http://127.0.0.1:8000
serve:
	$(BIN)/python -m http.server 8000 --bind 127.0.0.1 --directory _build/html

## A PNG of every page (light and dark) in screenshots/, for a person to look at.
screenshots: $(TEST_STAMP) browser
	$(BIN)/python scripts/screenshots.py

bench: $(BOOK_STAMP)
	$(BIN)/python bench/bench.py

clean:
	rm -rf _build .pytest_cache .ruff_cache .hypothesis
