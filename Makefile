# `make run` and `make test` do all set-up on a fresh machine: a virtual environment in .venv,
# the package with its extras, and (for the tests) a local Redis on 127.0.0.1:6379 and Debian's
# Chromium for the browser tests of the API docs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install demo bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'

run: install
	$(BIN)/python -m app run

test: install
	bash scripts/ensure_redis.sh
	bash scripts/ensure_chromium.sh
	$(BIN)/python -m pytest -q

demo: install
	bash scripts/demo_real_images.sh

bench: install
	$(BIN)/python bench/download.py
