# `make run` and `make test` do all set-up on a fresh machine: a virtual environment in .venv,
# the package with the extras each needs (`local` for the in-memory run, `test` for the tests),
# and for the tests a local Redis on 127.0.0.1:6379 and Debian's Chromium for the API docs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install install-local demo bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'

install-local: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local]'

run: install-local
	$(BIN)/python -m app run

test: install
	bash scripts/ensure_redis.sh
	bash scripts/ensure_chromium.sh
	$(BIN)/python -m pytest -q

demo: install-local
	bash scripts/demo_real_images.sh

bench: install
	$(BIN)/python bench/download.py
