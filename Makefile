# modellint: `make demo` runs the main job on the shipped example, `make test` runs the suite.
# Both create .venv and install what they need on a fresh machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
CORE   := $(VENV)/.installed-core
DEV    := $(VENV)/.installed-dev

.PHONY: demo test bench examples rules clean

DEMO_DATA   := build/demo-data
DEMO_REPORT := build/seed_report.html

# The seed model of the question: its summary, its findings, then the probes on a small
# synthetic stand-in for the 13-class data (written once) and the HTML report.
demo: $(CORE)
	$(BIN)/modellint summary examples/seed_cnn.h5
	$(BIN)/modellint check examples/seed_cnn.h5 --samples 8000 --classes 13 --image-size 128x128 --exit-zero
	@test -d $(DEMO_DATA) || { rm -rf $(DEMO_DATA).tmp && $(BIN)/modellint data synth $(DEMO_DATA).tmp \
		--classes 13 --size 128 --count 1300 --seed 0 && mv $(DEMO_DATA).tmp $(DEMO_DATA); }
	$(BIN)/modellint probe examples/seed_cnn.h5 --data $(DEMO_DATA) --budget 60 --exit-zero --html $(DEMO_REPORT)
	@echo "HTML report: $(abspath $(DEMO_REPORT))"

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

# make demo probes the Keras seed: Keras + TensorFlow-CPU, Pillow and scikit-learn.
$(CORE): pyproject.toml | $(BIN)/python
	$(PIP) install -c constraints.txt -e '.[keras,probes]'
	touch $@

# torch goes in first, pinned, so nothing later pulls a CUDA build.
# The model zoos of the zoo tests (tests/test_torch_zoo.py) and benchmarks/bench_zoo.py go in
# with --no-deps (pinned in constraints.txt): torchvision's and timm's metadata ask for a torch
# that pip could fetch as a CUDA build, and keras-hub's for tensorflow-text. Their import-time
# dependencies go in after them, normally. None of them is a dependency of modellint.
ZOO      := torchvision timm torchinfo keras-hub
ZOO_DEPS := huggingface_hub safetensors pyyaml regex tokenizers
$(DEV): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt -e '.[dev]'
	$(PIP) install -c constraints.txt --no-deps --no-warn-conflicts $(ZOO)
	$(PIP) install -c constraints.txt --no-warn-conflicts $(ZOO_DEPS)
	touch $@ $(CORE)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
