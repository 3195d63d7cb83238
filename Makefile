# The verbs a newcomer types. `make demo` and `make test` do all of their own set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
STACK := deploy/local/stack.sh
WITH_STACK := deploy/local/with-stack
CLI := $(WITH_STACK) $(VENV)/bin/safetravel
DEMO_REPORTS ?= 25000

.PHONY: help demo run test test-faults test-fuzz lint browser bench-ingest bench-floor bench-heatmap bench-alerts bench-export bench-load bench-routes bench-app app-screenshots dashboard-screenshots stack down migrate councils streets seed venv clean

help:
	@echo "make demo          run the whole platform with London demo data (Ctrl-C stops it)"
	@echo "make run           the same without demo data (PORT=8000 by default)"
	@echo "make test          run the test suite against real PostgreSQL + PostGIS and Redis"
	@echo "make test-faults   only the fault drills (Redis down, PostgreSQL restarted) under traffic"
	@echo "make test-fuzz     schemathesis against the OpenAPI document with a token of every role"
	@echo "make bench-ingest  reports/s through the API next to raw INSERTs (BENCH_ARGS=--with-worker: with the worker, CPU per report)"
	@echo "make bench-floor   CPU per report of the API stack's floor (Flask + flask-smorest, no DB) next to ours, per server"
	@echo "make bench-heatmap heatmap rebuild, tiles and freshness on 1,000,000 reports"
	@echo "make bench-alerts  alert targeting on 1,000,000 devices, fan-out throughput"
	@echo "make bench-export  council export of 1,000,000 reports per format, next to ogr2ogr"
	@echo "make bench-load    a mixed workload with locust: throughput, p50/p99, errors, lost reports"
	@echo "                   BASE=<commit>: capacity at p99 <= 300 ms here and at that commit (a git worktree),"
	@echo "                   same run, and the ratio; steps of 10,20,40,80 users x 30 s each, about 12 minutes"
	@echo "make bench-routes  the safer-route endpoint on 100 random walks, next to bare pgr_dijkstra"
	@echo "make bench-app     the commuter's app: shell size compressed, ready to report on a slow network"
	@echo "make lint          ruff over the code"
	@echo "make down          stop the local PostgreSQL and Redis"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); \
	  else echo "python3 -m venv failed: sudo apt-get install -y python3-venv"; exit 1; fi; }
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

stack:
	@$(STACK) up

down:
	@$(STACK) down

migrate: venv stack
	@$(CLI) migrate

councils: migrate
	@$(CLI) councils load data/london_boroughs.geojson

# The street network shipped in data/ (skipped when the same file is already loaded).
streets: councils
	@$(CLI) streets load

seed: streets
	@$(CLI) demo seed --reports $(DEMO_REPORTS)

run: streets
	@deploy/local/serve.sh

demo: seed
	@deploy/local/serve.sh

test: venv stack browser
	@$(WITH_STACK) $(VENV)/bin/pytest $(PYTEST_ARGS)

lint: venv
	@$(VENV)/bin/ruff check backend worker schemas tests bench migrations

# The fault drills alone (make test runs them too): Redis stopped, PostgreSQL restarted, under traffic.
test-faults: venv stack
	@$(WITH_STACK) $(VENV)/bin/pytest -m faults -s $(PYTEST_ARGS)

# Schemathesis against the OpenAPI document, every role; in a virtualenv of its own (its pins are not ours).
FUZZ_VENV := .venv-fuzz
test-fuzz: venv stack councils
	@[ -x $(FUZZ_VENV)/bin/st ] || { $(PYTHON) -m venv $(FUZZ_VENV) && $(FUZZ_VENV)/bin/pip install --quiet "schemathesis>=4.3,<5"; }
	@$(WITH_STACK) $(VENV)/bin/python -m tests.fuzz $(FUZZ_ARGS)

browser:
	@deploy/local/stack.sh browser

bench-ingest: venv stack
	@$(WITH_STACK) $(VENV)/bin/python -m bench.ingest $(BENCH_ARGS)

bench-floor: venv stack
	@$(WITH_STACK) $(VENV)/bin/python -m bench.api_floor $(BENCH_ARGS)

bench-heatmap: venv stack
	@$(WITH_STACK) $(VENV)/bin/python -m bench.heatmap $(BENCH_ARGS)

bench-alerts: venv stack
	@$(WITH_STACK) $(VENV)/bin/python -m bench.alerts $(BENCH_ARGS)

bench-export: venv stack
	@$(WITH_STACK) $(VENV)/bin/python -m bench.export $(BENCH_ARGS)

bench-routes: venv stack streets
	@$(WITH_STACK) $(VENV)/bin/python -m bench.routes $(BENCH_ARGS)

bench-load: venv stack councils
	@$(WITH_STACK) $(VENV)/bin/python -m bench.load $(if $(BASE),--base $(BASE) --seconds 30) $(BENCH_ARGS)

bench-app: venv stack browser
	@$(WITH_STACK) $(VENV)/bin/python -m bench.app $(BENCH_ARGS)

# The phone-sized pictures of the commuter's app in docs/images/ (docs/app.md).
app-screenshots: venv stack browser
	@$(WITH_STACK) $(VENV)/bin/python -m bench.app_screenshots

# The pictures of the dashboard in docs/images/ (README, docs/dashboard.md).
dashboard-screenshots: venv stack browser
	@$(WITH_STACK) $(VENV)/bin/python -m bench.dashboard_screenshots

clean:
	@$(STACK) purge
	rm -rf $(VENV)
