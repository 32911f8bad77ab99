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

# Programs some tests run, from Debian packages: a Prometheus server (the monitoring
# tests), Direwolf (KISS over real AFSK 1200 audio) and tshark (Wireshark's STANAG 5066 SIS
# dissector). Each package's program has the package's name. Installed here when missing and
# we may (root with apt-get); otherwise the tests that need them say why they skip.
SYSTEM_PACKAGES := prometheus direwolf tshark

system-deps:
	@missing=""; \
	for package in $(SYSTEM_PACKAGES); do \
		command -v $$package >/dev/null 2>&1 || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing$$missing (apt-get)"; \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } \
				|| echo "apt-get could not install$$missing; their tests will be skipped"; \
		else \
			echo "not installed and not root:$$missing; their tests will be skipped"; \
		fi; \
	fi

test: lint typecheck unit

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
