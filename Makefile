# The two commands that matter: `make run` (a local cluster) and `make test` (the full suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run stop test unit integration lint typecheck bench bench-quick bench-scheduler bench-state bench-state-processor clean prometheus faults faults-quick

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

kafka: $(STAMP)
	$(PY) -m devtools.kafka_broker fetch >/dev/null

# promtool + prometheus from Debian's package, extracted into ~/.cache/switchboard (alert-rule tests, observability test)
prometheus: $(STAMP)
	$(PY) -m devtools.prometheus_deb fetch >/dev/null

run: $(STAMP) kafka
	$(PY) -m devtools.cluster start --dir .run

stop:
	@if [ -x $(PY) ]; then $(PY) -m devtools.cluster stop --dir .run; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy shared services devtools

unit: $(STAMP) prometheus
	$(PY) -m pytest -q tests/unit

integration: $(STAMP) kafka prometheus
	$(PY) -m pytest -q tests/integration

test: $(STAMP) kafka prometheus lint
	$(PY) -m pytest -q tests

# Benchmarks: measured, never asserted. Results in bench/results/<date>-<name>.json.
bench: $(STAMP) kafka
	$(PY) -m bench.run --scaling
	$(PY) -m bench.http_worker_overhead --seconds 3
	$(PY) -m bench.http_worker_pipeline
	$(PY) -m bench.scheduler_bench
	$(PY) -m bench.history_state

bench-quick: $(STAMP) kafka
	$(PY) -m bench.run --quick
	$(PY) -m bench.http_worker_pipeline --burst 5000 --seconds 5

# One scheduler process with 1,000,000 pending timers (memory, lateness, recovery); smaller: TIMERS=100000.
bench-scheduler: $(STAMP) kafka
	$(PY) -m bench.scheduler_bench --timers $(or $(TIMERS),1000000)

# State: the ingress history store with 1,000,000 retained executions (memory slope, read path p99, restart,
# rebuild, retention); smaller: EXECUTIONS=100000.
bench-state: $(STAMP) kafka
	$(PY) -m bench.history_state --executions $(or $(EXECUTIONS),1000000)
	$(PY) -m bench.pipeline_state --executions $(or $(PIPELINE_EXECUTIONS),100000)

# One processor: RSS slope over 100,000 ended executions, RSS and restart with ACTIVE waiting ones (default 200,000;
# the target is 1,000,000: ACTIVE=1000000, about 25 minutes here).
bench-state-processor: $(STAMP) kafka
	$(PY) -m bench.processor_state --ended $(or $(ENDED),100000) --active $(or $(ACTIVE),200000)

clean:
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache

# The fault suite: a 3-node KRaft cluster, 2 replicas of every service, a mixed load through the public URL, faults
# on a seeded schedule (SEED=n to repeat one; RATE=executions started per second); every execution checked.
# Results in bench/results/<date>-faults*.json.
faults: $(STAMP) kafka
	$(PY) -m bench.faults $(if $(SEED),--seed $(SEED)) $(if $(RATE),--rate $(RATE))

faults-quick: $(STAMP) kafka
	$(PY) -m bench.faults --quick $(if $(SEED),--seed $(SEED)) $(if $(RATE),--rate $(RATE))
