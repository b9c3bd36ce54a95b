# Two commands on a fresh machine: `make report` (the experiment suite into one HTML
# report) and `make test`. Each bootstraps what it needs on first use: the virtual
# environment, the Python dependencies and the Kafka jars.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PLAN ?= experiments/plans/default.yaml
PYTEST_ARGS ?=

.PHONY: report test lint env jars bench-deps bench kafka-up kafka-down lab clean

report: env jars
	$(PY) -m experiments run $(PLAN)

test: env jars
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: env
	$(PY) -m ruff check .

env: $(VENV)/.installed

# Rebuilt when the dependency list changes; a conda user can point VENV at the env.
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

jars: env
	$(PY) -m experiments.kafka jars >/dev/null

# wrk: the C reference the generator's ceiling is compared with (`python -m experiments.load
# ceiling --compare-wrk`); Debian/Ubuntu only, needs root (the test that uses it skips without).
bench-deps:
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

kafka-up: env jars
	$(PY) -m experiments.kafka up

kafka-down: env
	$(PY) -m experiments.kafka down

# Optional: the article's service in Rust (experiments/native), a comparison target.
# Installs the Debian build packages, then builds once (cached until its sources change).
.PHONY: native
native: env
	bash experiments/native/install-deps.sh
	$(PY) -m experiments.native build

# Optional: the latency proxy (Toxiproxy's server with a microsecond latency toxic,
# experiments/network/proxy) behind the `network` run parameters. Needs Go; builds once
# into .network/ (cached afterwards).
.PHONY: proxy
proxy: env
	$(PY) -m experiments.network build

lab: env
	$(VENV)/bin/jupyter lab notebooks/

clean:
	-$(PY) -m experiments.kafka down
	rm -rf $(VENV) .kafka results
	rm -rf .native .network

# The service's per-request cost beside the raw-ASGI ceiling -> results/bench/service.json
# (every case three times, interleaved: this box's runs differ by up to 60% per case).
bench: env jars bench-deps
	$(PY) -m experiments.bench service --rounds 3 --out results/bench/service.json
