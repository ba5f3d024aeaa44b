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

.PHONY: lock lock-check setup book test lint lab serve screenshots bench clean browser student reset compare gpu-check results pdf

setup: $(BOOK_STAMP)

# requirements*.txt give the ranges; requirements.lock pins every package inside them (pip-tools).
# Every install below takes the lock as its constraints, so a fresh machine gets the same stack.
LOCK    := requirements.lock
LOCKER  := .venv-lock
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(LOCKER)/bin/pip-compile --quiet --strip-extras \
	--allow-unsafe --no-emit-find-links --no-emit-index-url --no-emit-trusted-host
# torch resolves to the CPU build on disk, 2.13.0+cpu; the lock names the release, torch==2.13.0,
# which that wheel satisfies and which a machine without it resolves from its own index.
UNTAG_TORCH := sed -i -E 's/^torch==([0-9.]+)\+cpu$$/torch==\1/'

$(LOCKER)/bin/pip-compile:
	$(PYTHON) -m venv $(LOCKER)
	$(LOCKER)/bin/python -m pip --quiet --disable-pip-version-check install pip-tools==7.7.0 2>&1 \
	  | { grep -v "^WARNING: Location" || true; }

## Pin every package of requirements*.txt in requirements.lock (keeps pins that still fit; UPGRADE=1 re-resolves).
lock: $(LOCKER)/bin/pip-compile
	$(PIP_COMPILE) $(if $(UPGRADE),--upgrade,) -o $(LOCK) requirements-test.txt 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(UNTAG_TORCH) $(LOCK)

## Fail when requirements.lock no longer fits the ranges in requirements*.txt (what `make lock` would change).
lock-check: $(LOCKER)/bin/pip-compile
	@tmp=$$(mktemp -d) && cp $(LOCK) $$tmp/$(LOCK) && \
	  $(PIP_COMPILE) -o $$tmp/$(LOCK) requirements-test.txt 2>&1 | { grep -v "^WARNING: Location" || true; } && \
	  $(UNTAG_TORCH) $$tmp/$(LOCK) && \
	  { diff -u $(LOCK) $$tmp/$(LOCK) && echo "requirements.lock fits requirements*.txt"; } \
	  || { echo "requirements.lock is out of date with requirements*.txt: run make lock and commit it"; exit 1; }

$(BOOK_STAMP): requirements.txt pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt -c $(LOCK) -e . 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(BIN)/python -c "import torch, mixlib, jupyter_book, sphinx_exercise" 
	touch $@

$(TEST_STAMP): $(BOOK_STAMP) requirements-test.txt
	$(PIP) install -r requirements-test.txt -c $(LOCK) 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(BIN)/python -c "import pytest, nbval, xdist, hypothesis, playwright, axe_playwright_python" 
	touch $@

## Recompute the stored results of chapters 6 and 7 (mixlib/results/*.json; about an hour and a quarter, two processes).
results: $(BOOK_STAMP)
	{ $(QUIET) $(BIN)/python scripts/fair_baseline.py fair && \
	  $(QUIET) $(BIN)/python scripts/fair_baseline.py long && \
	  $(QUIET) $(BIN)/python scripts/fair_routes.py run 0 2 4; } & pid=$$!; \
	  $(QUIET) $(BIN)/python scripts/fair_baseline.py regimes && \
	  $(QUIET) $(BIN)/python scripts/fair_baseline.py few && \
	  $(QUIET) $(BIN)/python scripts/fair_routes.py run 1 3; wait $$pid && \
	  $(QUIET) $(BIN)/python scripts/fair_routes.py merge

## Build the book into _build/html (strict: any warning or notebook error fails).
book: $(BOOK_STAMP)
	$(QUIET) $(BIN)/jupyter-book build . -W -n --keep-going

## Debian's Chromium for the browser tests (never a browser download).
browser:
	@command -v chromium >/dev/null || test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); \
	  else echo "Chromium not found and cannot be installed here: browser tests will be skipped."; fi; }

# Debian's TeX Live and fonts for the PDF: xelatex, the LaTeX packages Sphinx and Jupyter Book use,
# DejaVu (text, Greek, maths) and Symbola (the checkers' ✅ ❌ ⚠), pdftotext & co. for tests/test_pdf.py.
PDF_DEBS := texlive-xetex texlive-latex-extra texlive-fonts-recommended latexmk fonts-dejavu fonts-symbola poppler-utils

## The whole book as one PDF, _build/latex/book.pdf (xelatex, from the execution cache; installs
## Debian's TeX Live when missing, as root). A site already built is updated to link it.
pdf: $(BOOK_STAMP)
	@missing=$$(for p in $(PDF_DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing" $$missing; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null); \
	  elif ! command -v xelatex >/dev/null || ! command -v latexmk >/dev/null; then \
	    echo "make pdf needs xelatex, latexmk and fonts; as root: apt-get install" $$missing; exit 1; \
	  fi; fi
	rm -f _build/latex/book.pdf
	$(QUIET) LATEXMKOPTS=-silent LATEXOPTS="-interaction=nonstopmode -halt-on-error" \
	  $(BIN)/jupyter-book build . -W -n --keep-going --builder pdflatex \
	  || { grep -A4 "^!" _build/latex/book.log 2>/dev/null | head -40; exit 1; }
	@! grep "Missing character" _build/latex/book.log \
	  || { echo "The fonts lack the glyphs above: map them in latex_elements (_config.yml)."; exit 1; }
	@if [ -f _build/html/index.html ]; then $(MAKE) --no-print-directory book; fi
	@echo "The book as a PDF: _build/latex/book.pdf, $$(pdfinfo _build/latex/book.pdf 2>/dev/null | awk '/^Pages:/ {print $$2}') pages."

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

## Everything CI checks: lint, the strict build, library and site tests, every notebook.
test: $(TEST_STAMP) browser lint lock-check book
	$(QUIET) $(BIN)/python -m pytest -n 2
	$(MAKE) --no-print-directory compare

# The notebooks the strict build executed (myst-nb writes them to _build/jupyter_execute).
EXECUTED := $(patsubst %,_build/jupyter_execute/%,$(sort $(wildcard chapters/[0-9]*.ipynb chapters/further/*.ipynb)))

## Run every chapter again from a fresh kernel and compare each cell's text output with the
## build's run (nbval's comparing mode): a printed number that changes between two runs fails.
## What may legitimately differ is sanitised by tests/nbval-sanitize.cfg, which says why.
compare: $(TEST_STAMP)
	@for nb in $(EXECUTED); do test -f "$$nb" || { echo "$$nb is missing: run make book first"; exit 1; }; done
	rm -rf _build/compare
	$(BIN)/python scripts/compare_reference.py _build/compare $(EXECUTED) >/dev/null
	$(QUIET) $(BIN)/python -m pytest -p no:cacheprovider -n 2 --dist loadfile --nbval \
	  --nbval-sanitize-with tests/nbval-sanitize.cfg _build/compare/*.ipynb \
	  || { echo "A chapter printed something else than in the build's run (above). If that"\
	  "run predates your last change to mixlib, rebuild from scratch: rm -rf _build && make book."; exit 1; }

# Learners work in lab/ (ignored by git): the student edition of each chapter, with a stub
# cell after each exercise and no solutions, written once so that a rebuild keeps your work.
LAB := lab
# JupyterLab refuses to start as root unless told to.
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

## Write the student notebooks missing from lab/ (your copies are kept).
student: $(BOOK_STAMP)
	$(BIN)/python scripts/student.py --out $(LAB) --missing-only

## Open JupyterLab on the student notebooks in lab/ with the .venv kernel (mixlib installed).
lab: student
	$(BIN)/jupyter lab --notebook-dir=$(LAB) $(LAB_ROOT)

## Start one chapter afresh: make reset CH=02 (your lab/02_*.ipynb is kept in lab/.backup/ first).
reset: $(BOOK_STAMP)
	@test -n "$(CH)" || { echo "say which chapter: make reset CH=02"; exit 1; }
	$(BIN)/python scripts/student.py --out $(LAB) $(CH)

## Serve the built site on http://127.0.0.1:8000
serve:
	$(BIN)/python -m http.server 8000 --bind 127.0.0.1 --directory _build/html

## A PNG of every page (light and dark) in screenshots/, for a person to look at.
screenshots: $(TEST_STAMP) browser
	$(BIN)/python scripts/screenshots.py

## mixlib on a GPU: every public path with CUDA tensors (the tests skip where there is no GPU).
gpu-check:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) -m pytest -o addopts="" -p no:cacheprovider -v tests/test_devices.py

bench: $(BOOK_STAMP)
	$(BIN)/python bench/bench.py

clean:
	rm -rf _build .pytest_cache .ruff_cache .hypothesis
