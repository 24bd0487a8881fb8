# Two commands for a fresh machine with only Python installed:
#   make demo   - create .venv, install zoo, train configs/experiment/digits_cnn.yaml, print metrics + run dir
#   make test   - create .venv, install zoo with test extras (and Chromium for the browser test, as root on
#                 Debian), run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install browser demo test test-fast lint docs bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m zoo.fit --config configs/experiment/digits_cnn.yaml

browser:  # Debian's Chromium for the browser test of `zoo serve`, when missing and this machine can install it
	@sh scripts/install_browser.sh

test: install browser
	$(PY) -m pytest -n auto

test-fast: install
	$(PY) -m pytest -n auto -m "not slow"

lint: install
	$(PY) -m ruff check zoo tests scripts

docs: install
	$(PY) scripts/gen_docs.py

bench: install
	$(PY) scripts/bench_overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
