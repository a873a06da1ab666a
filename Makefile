# `make demo` and `make test` each create .venv when it is missing, install the project into it,
# and run. Nothing needs installing by hand. `make demo PYTHON=python3.12` uses that Python:
# a .venv made with another one is made again.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(subst /,_,$(PYTHON))
VERSION := import sys; print(sys.version)

.PHONY: demo test lint serve bench faults clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: give PYTHON=... (3.11 or newer)"; exit 1; }
	@if [ -x $(BIN)/python ] && [ "$$($(BIN)/python -c '$(VERSION)')" != "$$($(PYTHON) -c '$(VERSION)')" ]; then \
		echo "$(VENV) was made with another Python: making it again with $(PYTHON)"; rm -rf $(VENV); fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/thunderbot demo

test: $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

serve: $(STAMP)
	$(BIN)/thunderbot serve

# The bot against bare aiohttp and bare Bolt, as ratios measured in one run (docs/benchmarks.md).
# `make bench BENCH_ARGS="--rounds 5 --only ack"` passes options on; exits 1 when a figure misses.
bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# 10 batches of 20 runs started from Slack while webhooks are dropped, repeated and shuffled, API
# calls and Slack calls fail, and the bot is killed twice (docs/reliability.md). Exits 1 when a
# result is lost or repeated, a launch was sent twice, a card is wrong or work is left.
# `make faults FAULT_ARGS="--seed 7 --workdir /tmp/faults"` passes options on.
faults: $(STAMP)
	$(BIN)/python -m bot.sandbox.fault_run $(FAULT_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
