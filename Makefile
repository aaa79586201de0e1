# modellint: `make demo` runs the main job on the shipped example, `make test` runs the suite.
# Both create .venv and install what they need on a fresh machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
CORE   := $(VENV)/.installed-core
DEV    := $(VENV)/.installed-dev

.PHONY: demo test bench examples rules clean

demo: $(CORE)
	$(BIN)/modellint summary examples/seed_cnn.h5
	$(BIN)/modellint check examples/seed_cnn.h5 --samples 8000 --classes 13 --image-size 128x128 --exit-zero

test: $(DEV)
	tools/system-deps.sh
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(DEV)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Regenerate the rule reference (rules/*.md) from the rules' own docs and examples.
rules: $(DEV)
	$(BIN)/python -c "from modellint.rules.docs import write_all; write_all('rules')"

# Rebuild the shipped example models with the installed Keras.
examples: $(DEV)
	$(BIN)/python examples/build_seed.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(CORE): pyproject.toml | $(BIN)/python
	$(PIP) install -c constraints.txt -e .
	touch $@

# torch goes in first, pinned, so nothing later pulls a CUDA build.
$(DEV): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt -e '.[dev]'
	touch $@ $(CORE)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
