# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Set-up is idempotent: it installs only what is missing or changed.
VENV     := .venv
BIN      := $(VENV)/bin
CHAOSKIT := $(BIN)/chaoskit
PYTEST_ARGS ?=
DEMO     ?= experiments/festival-surge.yaml

.PHONY: setup setup-docker setup-tools demo bench-demo test lint unit bench clean

setup:
	@bash scripts/setup.sh

setup-docker: setup
	@bash scripts/setup-docker.sh

setup-tools:
	@bash scripts/setup-tools.sh

# A rehearsal that reached a verdict has done its job: held (0), violated (1) and aborted by
# a guardrail (3) are findings, so `make demo` exits 0; bad input (2) and environment errors
# (4) are failures and keep their exit code.
demo: setup
	@$(CHAOSKIT) run $(DEMO); code=$$?; \
	case $$code in \
	  0) echo "demo: the hypothesis held (exit 0)";; \
	  1) echo "demo: the hypothesis was violated (exit 1): that is what this rehearsal found";; \
	  3) echo "demo: a guardrail aborted the rehearsal (exit 3): that is what it found";; \
	  *) exit $$code;; \
	esac

# The demo's story, N times over (default 5): every verdict, and whether they agree.
DEMO_RUNS ?= 5
bench-demo: setup
	$(BIN)/python -m bench.bench_demo --runs $(DEMO_RUNS) $(DEMO)

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
