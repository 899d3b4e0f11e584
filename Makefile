# The README's two set-up commands, plus the benchmark. torch is pinned: an unpinned one pulls CUDA wheels.
PYTHON ?= python
INSTALL = $(PYTHON) -m pip install torch==2.13.0 -e ".[dev]"

.PHONY: install quickstart test benchmark

install:
	$(INSTALL)

quickstart: install
	$(PYTHON) scripts/quickstart.py

test: install
	$(PYTHON) -m pytest -n 2 --dist loadfile

benchmark:
	$(PYTHON) scripts/benchmark.py
