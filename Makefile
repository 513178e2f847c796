# facelab: `make run` and `make test` set up everything on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LFW    := ../shared/data/lfw

.PHONY: install run test bench clean

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

run: install
	@mkdir -p out
	$(BIN)/python -c "from skimage import data; from PIL import Image; Image.fromarray(data.astronaut()).save('out/astronaut.jpg')"
	$(BIN)/facelab detect out/astronaut.jpg --draw out/astronaut_faces.jpg
	@echo "drawn faces: out/astronaut_faces.jpg"
	@if [ -d $(LFW)/images ]; then \
	  $(BIN)/facelab verify $(LFW)/images/Colin_Powell/Colin_Powell_0001.jpg $(LFW)/images/Colin_Powell/Colin_Powell_0002.jpg; \
	  $(BIN)/facelab verify $(LFW)/images/Colin_Powell/Colin_Powell_0001.jpg $(LFW)/images/Tony_Blair/Tony_Blair_0001.jpg || true; \
	fi

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/lfw_verify.py
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf $(VENV) out .pytest_cache
