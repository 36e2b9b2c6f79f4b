# The README's commands: `make run`, `make test` and `make lint` (all set up .venv first).
VENV := .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

.PHONY: run test lint fmt
run: $(VENV)/.installed
	$(PY) itinerary.py

test: $(VENV)/.installed
	$(PY) -m pytest

# Style, types (mypy: pyproject.toml) and the layers (import-linter contracts: pyproject.toml).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check itinerary tests bench itinerary.py
	$(VENV)/bin/ruff format --check itinerary tests bench itinerary.py
	$(VENV)/bin/mypy itinerary
	$(VENV)/bin/lint-imports

fmt: $(VENV)/.installed
	$(VENV)/bin/ruff format itinerary tests bench itinerary.py
