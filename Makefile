# The README's commands. Each target sets up its own virtual environment first (pinned, ~1-2 min once).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
RECSYS_HOME ?= $(CURDIR)/.recsys
export RECSYS_HOME
export DAGSTER_HOME := $(RECSYS_HOME)/dagster_home

.PHONY: setup demo demo-aws test dev bench serve clean

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

# The Dagster instance of the embedded default: runs of `make demo` show up in `make dev`.
$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: setup $(DAGSTER_HOME)/dagster.yaml
	DAGSTER_DISABLE_TELEMETRY=1 $(VENV)/bin/recsys-platform demo

# The aws deployment (RECSYS_ENV=aws) whole on this machine: BigQuery, S3/STS/IAM (moto) and Personalize
# stand-ins on loopback, reached by the real clients; only endpoint settings differ from production.
demo-aws: setup
	DAGSTER_DISABLE_TELEMETRY=1 $(VENV)/bin/recsys-platform demo-aws

test: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n 2 -q

bench: setup
	$(PY) -m bench.run

# The UI and daemon on the embedded default's state, with the local Personalize beside them (the pipeline
# reaches it over HTTP only). If one already serves on 8765 (`make serve`), that one is used.
dev: setup $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/recsys-platform serve --host 127.0.0.1 --port 8765 & serve=$$!; \
	trap 'kill $$serve 2>/dev/null' EXIT INT TERM; \
	DAGSTER_DISABLE_TELEMETRY=1 RECSYS_PERSONALIZE_ENDPOINT_URL=http://127.0.0.1:8765 \
	  $(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1

serve: setup
	$(VENV)/bin/recsys-platform serve --host 127.0.0.1 --port 8765

clean:
	rm -rf $(RECSYS_HOME)
