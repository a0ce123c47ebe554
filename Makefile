# Two commands do everything on a fresh machine: `make demo` and `make test`.
# `setup` is idempotent: it installs only what is missing or changed.
VENV     := .venv
BIN      := $(VENV)/bin
CHAOSKIT := $(BIN)/chaoskit
PYTEST_ARGS ?=

.PHONY: setup setup-docker demo test lint unit bench clean

setup:
	@bash scripts/setup.sh

setup-docker: setup
	@bash scripts/setup-docker.sh

demo: setup
	$(CHAOSKIT) run experiments/festival-surge.yaml

lint: setup
	$(BIN)/ruff check chaoskit targets tests bench
	$(BIN)/mypy

test: setup-docker lint
	$(BIN)/pytest $(PYTEST_ARGS)

unit: setup
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

bench: setup-docker
	$(BIN)/python -m bench

clean:
	-$(CHAOSKIT) down 2>/dev/null
	-$(CHAOSKIT) cleanup 2>/dev/null
	rm -rf $(VENV) .chaoskit .mypy_cache .ruff_cache .pytest_cache .hypothesis reports/*/ bench/out
