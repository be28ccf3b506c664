# The two commands of the README:  `make book`  and  `make test`.
# Both create the virtual environment .venv on first use (pinned requirements, the package in editable mode).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup book test unit lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	touch $@

# Execute every chapter (default preset: cpu) into runs/book and build the HTML book into _build/html.
book: setup
	$(BIN)/racecar book

# Unit tests, a papermill smoke run of every chapter, then the book build with every chapter executed afresh
# and a check of the built pages (figures, rendered reproduction-check tables, no tracebacks).
test: setup lint
	$(BIN)/python -m pytest
	$(BIN)/racecar book --execute force --jobs 2
	$(BIN)/python tests/check_built_book.py _build/html

# Unit tests only (no notebooks): a quick check while developing.
unit: setup
	$(BIN)/python -m pytest -m "not notebooks"

# Static checks (ruff; configuration in pyproject.toml), notebooks included.
lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf _build .pytest_cache
