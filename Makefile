# Each target creates .venv when missing, so a fresh clone needs only `make demo` / `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Third-party pump clients (nesp-lib, pumpy, flowchem, pylabrobot) that the tests point at
# `pumpctl simulate`: their own throwaway venv, built once from pinned requirements, reused after.
TP_VENV := .venv-thirdparty
TP_REQ := tests/thirdparty/requirements.txt
TP_STAMP := $(TP_VENV)/.installed

.PHONY: demo test test-slow lint bench docs clean thirdparty

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(TP_STAMP): $(TP_REQ)
	rm -rf $(TP_VENV)
	$(PY) -m venv $(TP_VENV)
	$(TP_VENV)/bin/python -m pip install --quiet -r $(TP_REQ) || { rm -rf $(TP_VENV); \
	  echo "error: could not build the third-party client venv from $(TP_REQ)" >&2; exit 1; }
	touch $(TP_STAMP)

thirdparty: $(TP_STAMP)

demo: $(STAMP)
	$(BIN)/pumpctl demo

# `make test`: every test but the long soaks (about 2 min on 2 cores); `make test-slow`: the
# soaks and larger property samples (tests marked `slow`). CI (.ci/run) runs both.
# One worker more than cores, work-stealing: the pty, subprocess and third-party-client tests
# wait on wall time, and a spare worker keeps the cores busy meanwhile (2 cores: 153 -> 146 s).
WORKERS := $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))
# Bytecode is written even where the environment says not to: each worker otherwise rewrites
# every test module's asserts again (6 of its 11 s of collection; a second run reuses them).
# Test files (journals, sockets, state files) go to RAM where the machine has /dev/shm: the
# journal fsyncs every append, as it must in use, and on a virtual disk that took 0.3 ms of
# wall and 0.16 ms of CPU each; what a test asserts does not depend on the disk's flush.
TEST_TMP := $(shell test -d /dev/shm -a -w /dev/shm && echo /dev/shm)
PYTEST := $(if $(TEST_TMP),TMPDIR=$(TEST_TMP)) PYTHONDONTWRITEBYTECODE= \
	PUMPCTL_THIRDPARTY_PYTHON=$(CURDIR)/$(TP_VENV)/bin/python \
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist worksteal

test: $(STAMP) $(TP_STAMP)
	$(PYTEST) -m "not slow"

test-slow: $(STAMP) $(TP_STAMP)
	$(PYTEST) -m slow

bench: $(STAMP)
	$(BIN)/python -m bench

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy --strict src

clean:
	rm -rf $(VENV) $(TP_VENV) build dist .pytest_cache .mypy_cache .ruff_cache
