PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit clean system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# First three live daemons on 127.0.0.1, then the main job: the reference emulation (a
# battalion of 37 nodes, two hours of virtual time, about a minute), ending with its report.
demo: $(STAMP)
	$(PY) -m tawan.demo
	$(VENV)/bin/tawan emulate scenarios/reference.toml --out demo-run/emulation

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP) system-deps
	$(VENV)/bin/pytest -q

# The monitoring tests run a real Prometheus server (Debian package prometheus); installed
# here when missing and we may (root with apt-get), otherwise those tests say why they skip.
system-deps:
	@if ! command -v prometheus >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing prometheus (apt-get)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
		else \
			echo "prometheus not installed and not root: its tests will be skipped"; \
		fi; \
	fi

test: lint typecheck unit

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
