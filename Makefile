# The two commands of the README:  `make book`  and  `make test`.
# Both create the virtual environment .venv on first use (pinned requirements, the package in editable mode).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# The browser check opens the built book in Debian's Chromium, driven by Playwright (never `playwright install`).
CHROMIUM ?= /usr/bin/chromium

.PHONY: setup book test unit lint chromium clean bench

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	touch $@

# Execute every chapter (default preset: cpu) into runs/book and build the HTML book into _build/html.
book: setup
	$(BIN)/racecar book

# Unit tests, a papermill smoke run of every chapter, then the book build with every chapter executed afresh,
# a check of the built pages (figures, rendered reproduction-check tables, no tracebacks) and every page opened
# in headless Chromium with the network blocked (images loaded, math typeset, no console errors; screenshots
# in _build/screenshots).
test: setup lint chromium
	$(BIN)/python -m pytest
	$(BIN)/racecar book --execute force --jobs 2
	$(BIN)/python tests/check_built_book.py _build/html
	RACECAR_CHROMIUM=$(CHROMIUM) $(BIN)/python tests/check_book_browser.py _build/html

# Chromium for the browser check: installed with apt-get when missing and running as root (as CI does).
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make: installing Chromium for the browser check (apt-get install chromium)"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "make: the browser check needs Chromium at $(CHROMIUM): install it as root with 'apt-get install chromium'" \
	         "(Debian), or give another Chromium or Chrome: make test CHROMIUM=/path/to/chromium" >&2; \
	    exit 1; \
	  fi; \
	fi

# Unit tests only (no notebooks): a quick check while developing.
unit: setup
	$(BIN)/python -m pytest -m "not notebooks"

# Static checks (ruff; configuration in pyproject.toml), notebooks included.
lint: setup
	$(BIN)/ruff check .

# Benchmarks (not part of `make test`): every script in benchmarks/ with --json, short runs on one thread;
# writes the table benchmarks/results.md (a few minutes; times depend on the machine's load, which is recorded).
bench: setup
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run_all.py --out benchmarks/results.md

clean:
	rm -rf _build .pytest_cache
