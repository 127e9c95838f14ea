# Two entry points (see README): `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint typecheck pytest clean plugin-template chromium

setup: $(STAMP)

# Reinstall whenever the project's or a first-party plugin's dependency list changes.
$(STAMP): pyproject.toml plugins/acctdomain-commissions/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[postgres,dev,forecast,report]'
	$(BIN)/python -m pip install --quiet -e plugins/acctdomain-commissions
	touch $(STAMP)

# A new plugin from plugins/template: `make plugin-template NAME=zebra` writes
# plugins/acctdomain-zebra (`myplugin` replaced by the name in paths and contents).
plugin-template: $(STAMP)
	$(BIN)/python plugins/new_plugin.py $(NAME)

demo: $(STAMP)
	$(BIN)/acctdomain demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs/examples plugins
	$(BIN)/ruff format --check src tests benchmarks docs/examples plugins

typecheck: $(STAMP)
	$(BIN)/mypy --strict src plugins/acctdomain-commissions/src plugins/template/src

# The dashboard's browser test (tests/test_report_browser.py) drives Debian's headless Chromium
# through chromedriver: installed here when missing (as root), quietly; nothing to do once there.
chromium:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || { \
	    apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }; }

pytest: $(STAMP) chromium
	$(BIN)/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
