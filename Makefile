# facelab: `make run` and `make test` set up everything on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LFW    := ../shared/data/lfw
# Where this machine keeps the CPU build of torch (pip's find-links). `make lock` resolves torch from it: PyPI's
# own torch wheel for Linux pulls several GB of CUDA libraries.
WHEELS ?= /opt/wheels

.PHONY: install run test lint bench clean chromium lock wheel docs docs-serve

install: $(STAMP)

# requirements.lock pins every package of facelab[all] and the dev group (pyproject.toml); `make lock` remakes it.
# face-recognition (the reference in benchmarks) goes in with --no-deps: its `dlib` requirement would compile dlib
# for ~12 min, and dlib-bin (a core dependency) already provides `import dlib`. setuptools<81 (in the lock):
# face-recognition-models imports pkg_resources, removed in setuptools 81.
$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools<81" wheel
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps face-recognition==1.3.0
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# Re-resolve requirements.lock from pyproject.toml (keeps the versions already in it unless they no longer fit).
lock: install
	$(BIN)/uv pip compile pyproject.toml --all-extras --group dev --python $(BIN)/python --find-links $(WHEELS) \
	  --custom-compile-command "make lock" -o requirements.lock

# The web demo on the embedded default: SQLite gallery in ./data (git-ignored); prints the URL.
run: install
	$(BIN)/facelab serve --host 127.0.0.1 --port 8000 --gallery data/gallery.db

# Browser tests drive Debian's Chromium (no browser download at test time).
chromium:
	@test -x /usr/bin/chromium || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && $$SUDO apt-get install -y chromium chromium-driver; }

# The suite includes tests/test_wheel.py: the wheel, installed with only its declared dependencies into a fresh
# virtualenv outside the source tree, verifies, identifies and serves from there.
test: install chromium docs lint
	$(BIN)/python -m pytest -q

# Lint and type check; settings in pyproject.toml ([tool.ruff], [tool.mypy]), versions in requirements.lock.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# The wheel users install: out/dist/facelab-VERSION-py3-none-any.whl.
wheel: install
	$(BIN)/python -m pip wheel --no-deps -q -w out/dist .

# The documentation site (MkDocs Material, offline): out/site/index.html. --strict: a broken link fails the build.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir out/site

docs-serve: install
	$(BIN)/mkdocs serve -a 127.0.0.1:8001

bench: install
	$(BIN)/python benchmarks/lfw_verify.py
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
