# emo-live: two commands on a fresh Debian machine with Python 3.11:
#   make demo   # set everything up, build the lite bundle, run it on a sample clip
#   make test   # the test suite (what .ci/run runs)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
EMO := $(BIN)/emo-live
BUNDLE ?= bundles/lite
STAMP := $(VENV)/.installed
# The exact versions the suite last passed with; pyproject.toml keeps the ranges.
LOCK := constraints.txt
# Debian packages: PortAudio for the microphone, espeak-ng + sox to make test speech,
# ffmpeg for audio tracks of video files, chromium for the web page test.
APT_PACKAGES := espeak-ng sox libportaudio2 portaudio19-dev ffmpeg chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test apt install sources bundle bench bench-peers lint clean lock upgrade-check

demo: $(BUNDLE)/manifest.json
	@echo "== the demo clip: a face video from the test media + espeak-ng speech =="
	$(EMO) models clip demo.mp4
	@echo "== emo-live run on it (video + audio) =="
	$(EMO) run --bundle $(BUNDLE) --source demo.mp4 --labels mer --jsonl demo-readings.jsonl
	@echo "== explained readings (all $$(wc -l < demo-readings.jsonl) events are in demo-readings.jsonl) =="
	@$(BIN)/python -m emolive.cli.show demo-readings.jsonl

test: $(STAMP) sources
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi

# torch first, pinned: the CPU build. Anything that depends on torch comes after it, so pip
# never pulls the multi-GB CUDA build.
$(STAMP): pyproject.toml $(LOCK) | apt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c $(LOCK) torch==2.13.0
	$(BIN)/pip install -q -c $(LOCK) -e ".[export,audio,test,eval]"
	touch $@

# After a green `make test`: record the versions it passed with.
lock: $(STAMP)
	{ sed -n '/^#/p' $(LOCK); $(BIN)/pip freeze --exclude-editable | grep -iv '^emo-live'; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)

# The newest versions pyproject.toml allows, in a scratch venv: what changed against the
# lock, and whether the suite still passes with them. Leaves the project's .venv alone.
UPGRADE := .venv-upgrade
upgrade-check: sources
	rm -rf $(UPGRADE) && $(PYTHON) -m venv $(UPGRADE)
	$(UPGRADE)/bin/pip install -q --upgrade pip
	$(UPGRADE)/bin/pip install -q torch==2.13.0
	$(UPGRADE)/bin/pip install -q --upgrade --upgrade-strategy eager -e ".[export,audio,test,eval]"
	$(UPGRADE)/bin/pip freeze --exclude-editable | grep -iv '^emo-live' > $(UPGRADE)/freeze.txt
	@echo "== against $(LOCK) =="
	@$(UPGRADE)/bin/python .ci/lockdiff.py $(LOCK) $(UPGRADE)/freeze.txt | tee $(UPGRADE)/changes.txt
	@echo "== the suite with the newest versions =="
	EMOLIVE_UPGRADE_CHECK=1 $(UPGRADE)/bin/python -m pytest -q -p no:cacheprovider && echo "upgrade-check: passed; \
	  to adopt: cp $(UPGRADE)/freeze.txt into $(LOCK) (make lock does it from .venv)" 

install: $(STAMP)

sources: $(STAMP)
	$(EMO) models fetch --tests

$(BUNDLE)/manifest.json: $(STAMP) | sources
	$(EMO) export --out $(BUNDLE)
	$(EMO) calibrate $(BUNDLE)

bundle: $(BUNDLE)/manifest.json

# The peers we compare against live in their own environments: fer needs TensorFlow (its
# facenet-pytorch dependency is only for MTCNN and would pull a CUDA torch: skipped).
.venv-fer/.installed:
	test -x .venv-fer/bin/python || $(PYTHON) -m venv .venv-fer
	.venv-fer/bin/pip install -q --no-deps fer==25.10.3
	.venv-fer/bin/pip install -q tensorflow-cpu "opencv-contrib-python-headless<5" pandas tqdm requests matplotlib "setuptools<81"
	touch $@

# llama.cpp, the LLM peer, builds from source (~4-5 min on 2 cores).
$(VENV)/.llama-cpp: $(STAMP)
	CMAKE_ARGS=-DLLAVA_BUILD=OFF $(BIN)/pip install -q llama-cpp-python==0.3.36
	touch $@

bench-peers: .venv-fer/.installed $(VENV)/.llama-cpp

bench: $(BUNDLE)/manifest.json bench-peers
	$(EMO) bench all --bundle $(BUNDLE)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf bundles build *.egg-info .pytest_cache $(UPGRADE)
