# The two commands a user needs are `make reproduce` and `make test`; both build the environment
# first. Everything here calls `python -m analysis` or pytest inside .venv.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements.lock
STUDY ?= reference
# The stamp's name carries the lock file's hash, so a changed lock file rebuilds the environment.
LOCK_HASH := $(shell $(PYTHON) -c "import hashlib; print(hashlib.sha256(open('$(LOCK)', 'rb').read()).hexdigest()[:16])")
STAMP := $(VENV)/.lock-$(LOCK_HASH)
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

export PYTHONHASHSEED := 0

.PHONY: help venv reproduce paper test verify lab bench reference lock clean distclean

help:
	@echo "make reproduce   build .venv if needed, then run the reference study end to end"
	@echo "make test        build .venv if needed, then the whole test suite (nbval on the notebooks included)"
	@echo "make paper       build the manuscript from the ledger into paper/build/<study>/"
	@echo "make verify      rebuild the study from raw data in a fresh folder and compare with what is committed"
	@echo "make lab         JupyterLab on the project's kernel"
	@echo "make bench       benchmarks, written to bench/RESULTS.md"
	@echo "make reference   install R and lme4 (Debian) and regenerate tests/reference/ outputs"
	@echo "make lock        re-resolve requirements.lock and environment.yml from pyproject.toml"
	@echo "make clean       remove generated outputs (never data_raw/); distclean also removes .venv"
	@echo "variables: STUDY=$(STUDY) (any studies/<name>.yml), PYTHON=$(PYTHON)"

venv: $(STAMP)

$(STAMP): $(LOCK)
	@echo "==> creating $(VENV) from $(LOCK) (Python: $$($(PYTHON) --version))"
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m analysis kernel
	touch $@

reproduce: venv
	@echo "==> running study '$(STUDY)'"
	$(PY) -m analysis run $(STUDY)
	@echo "==> building the paper"
	$(PY) -m analysis paper $(STUDY)

paper: venv
	$(PY) -m analysis paper $(STUDY)

test: venv
	$(PY) -m pytest tests
	$(PY) -m pytest $(NBVAL) notebooks

verify: venv
	$(PY) -m analysis verify $(STUDY)

lab: venv
	$(PY) -m analysis kernel
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) $(if $(filter 0,$(shell id -u)),--allow-root)

bench: venv
	$(PY) -m analysis bench

reference:
	apt-get update -qq && apt-get install -y -qq --no-install-recommends r-base-core r-cran-lme4 r-cran-geepack r-cran-sandwich
	bash tests/reference/generate.sh

lock:
	$(PY) -m piptools compile --quiet --generate-hashes --allow-unsafe --extra dev --strip-extras \
		--no-emit-index-url --no-emit-find-links -o $(LOCK) pyproject.toml
	$(PY) -m analysis environment --write

clean:
	$(PY) -m analysis clean

distclean: clean
	rm -rf $(VENV)
