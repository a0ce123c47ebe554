# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Set-up is idempotent: it installs only what is missing or changed.
VENV     := .venv
BIN      := $(VENV)/bin
CHAOSKIT := $(BIN)/chaoskit
PYTEST_ARGS ?=
DEMO     ?= experiments/festival-surge.yaml

.PHONY: setup setup-docker setup-tools demo test lint unit bench clean

setup:
	@bash scripts/setup.sh

setup-docker: setup
	@bash scripts/setup-docker.sh

setup-tools:
	@bash scripts/setup-tools.sh

# A rehearsal that finds a violated hypothesis (exit 1) has done its job: say so, don't fail.
demo: setup
	@$(CHAOSKIT) run $(DEMO); code=$$?; \
	if [ $$code -eq 1 ]; then echo "demo: the hypothesis was violated (exit 1): that is what this rehearsal found"; \
	else exit $$code; fi

lint: setup
	$(BIN)/ruff check chaoskit targets tests bench
	$(BIN)/mypy

test: setup-docker setup-tools lint
	$(BIN)/pytest $(PYTEST_ARGS)

unit: setup
	$(BIN)/pytest tests/unit tests/orderstack $(PYTEST_ARGS)

bench: setup-docker setup-tools
	$(BIN)/python -m bench

clean:
	-$(CHAOSKIT) down 2>/dev/null
	-$(CHAOSKIT) down --backend docker 2>/dev/null
	-$(CHAOSKIT) cleanup 2>/dev/null
	rm -rf $(VENV) .chaoskit .mypy_cache .ruff_cache .pytest_cache .hypothesis reports/*/ bench/out
