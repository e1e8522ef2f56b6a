# Developer tasks. On a fresh Debian, `make demo` then `make test` is all the setup needed:
# system packages come from .ci/sysdeps.sh (installed when root), Python ones into $(VENV).
VENV ?= .venv
PY = $(VENV)/bin/python
PYTHON ?= python3
STAMP = $(VENV)/.installed

.DEFAULT_GOAL := test
.PHONY: sysdeps venv install compile lint typecheck test demo bench clean distclean

sysdeps:
	@bash .ci/sysdeps.sh

$(PY): | sysdeps
	$(PYTHON) -m venv $(VENV)

venv: $(PY)

# Reinstall only when the dependency list changed.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

# Byte-code for the package, as pip writes it for installed wheels: an editable install has
# none, and where PYTHONDONTWRITEBYTECODE is set every start would compile monitor/ again.
compile: $(STAMP)
	@$(PY) -m compileall -q monitor

install: sysdeps $(STAMP) compile

lint: install
	$(VENV)/bin/ruff check monitor tests bench

typecheck: install
	$(VENV)/bin/mypy

test: lint typecheck
	$(VENV)/bin/pytest -q

demo: install
	$(VENV)/bin/xborder demo --out demo-out

bench: install
	$(PY) bench/run.py
	$(PY) bench/resolve.py
	$(PY) bench/verdicts.py
	$(PY) bench/follow.py
	$(PY) bench/alert_latency.py

clean:
	rm -rf demo-out bench/out build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find monitor tests bench migrations -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
