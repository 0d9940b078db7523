# The README's commands. PYTHON must be 3.11 for the local torch wheel (and matches the bake image).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test lint bake serve

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-bake.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Bake layer/model/ from the official release (or BAKE_CHECKPOINT=path for an air-gapped build).
bake: setup
	$(BIN)/python scripts/bake_weights.py $(if $(BAKE_CHECKPOINT),--checkpoint $(BAKE_CHECKPOINT)) $(if $(BAKE_SHA256),--sha256 $(BAKE_SHA256))

# The API on 127.0.0.1:8000 with an embedded S3 emulator; bakes layer/model/ first if missing.
serve: setup
	$(BIN)/python scripts/serve_local.py
