# facelab: `make run` and `make test` set up everything on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LFW    := ../shared/data/lfw

.PHONY: install run test bench clean chromium

install: $(STAMP)

# setuptools<81: face-recognition-models imports pkg_resources, removed in setuptools 81.
# face-recognition goes in with --no-deps: its `dlib` requirement would compile dlib for ~12 min, and
# dlib-bin (from requirements.txt) already provides `import dlib`.
$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools<81" wheel
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps face-recognition==1.3.0
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# The web demo on the embedded default: SQLite gallery in ./data (git-ignored); prints the URL.
run: install
	$(BIN)/facelab serve --host 127.0.0.1 --port 8000 --gallery data/gallery.db

# Browser tests drive Debian's Chromium (no browser download at test time).
chromium:
	@test -x /usr/bin/chromium || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && $$SUDO apt-get install -y chromium chromium-driver; }

test: install chromium
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/lfw_verify.py
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf $(VENV) out .pytest_cache
