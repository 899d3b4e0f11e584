# The README's two set-up commands, plus the benchmark. torch is pinned: an unpinned one pulls CUDA wheels.
PYTHON ?= python
INSTALL = $(PYTHON) -m pip install torch==2.13.0 -e ".[dev]"

.PHONY: install quickstart test benchmark gpu-wheels

install:
	$(INSTALL)

quickstart: install
	$(PYTHON) scripts/quickstart.py

test: install
	$(PYTHON) -m pytest -n 2 --dist loadfile

benchmark:
	$(PYTHON) scripts/benchmark.py

# what scripts/gpu_check.sh installs on a GPU machine that lacks it (no index there): carry scripts/wheels/ with the
# run (device tool: carry ["scripts/wheels"]). torch, transformers, accelerate and peft are already on those machines.
gpu-wheels:
	$(PYTHON) -m pip download -d scripts/wheels --only-binary :all: datasets evaluate seqeval scikit-learn
