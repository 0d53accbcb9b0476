# Quick start: `make demo` (set up, then the main job) and `make test` (set up, then the tests).
# torch==2.13.0 is installed before the project: a bare "torch" requirement pulls a CUDA build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ZOO := $(VENV)/bin/zoo
DATA ?= ../shared/datasets/imdb

.PHONY: setup test demo bench

$(VENV)/.installed: pyproject.toml setup.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 15) else "the zoo needs Python 3.11 to 3.14; $(PYTHON) is " + sys.version.split()[0] + ": pass PYTHON=python3.12 (or another) to make")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# Both cores; a test file's tests stay on one worker (they share its module fixtures).
test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile

SAMPLE := The movie was cool. The animation and the graphics were out of this world. I would recommend this movie.

# The main job on a budget (about 6 minutes on 2 cores once set up): train the bilstm recipe for 400 steps,
# evaluate it on the test split, export it to ONNX (validated), and classify the seed
# tutorial's sample sentence with PyTorch and with onnxruntime (ids in, then raw text in).
demo: setup
	rm -rf runs/demo
	$(ZOO) train bilstm --data $(DATA) --max-steps 400 --out runs/demo
	$(ZOO) evaluate runs/demo --data $(DATA)
	$(ZOO) export runs/demo --format onnx --data $(DATA)
	$(ZOO) predict runs/demo "$(SAMPLE)"
	$(ZOO) predict runs/demo/model.onnx "$(SAMPLE)"
	$(ZOO) export runs/demo --format onnx --with-tokenizer --data $(DATA)
	$(ZOO) predict runs/demo/model-text.onnx "$(SAMPLE)"

bench: setup
	$(PY) bench/encoder_throughput.py
