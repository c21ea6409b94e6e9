# seglab: every target creates .venv and installs the package on first use; a second run installs nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DATA   := data
OUT    := outputs

.PHONY: demo test test-slow notebooks bench lint clean data

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## data: generate the synthetic MiniCity and MiniVOC datasets if they are missing
data: $(STAMP)
	test -d $(DATA)/minicity/leftImg8bit || $(PY) -m seglab synth minicity --out $(DATA)/minicity
	test -d $(DATA)/minivoc/VOCdevkit || $(PY) -m seglab synth minivoc --out $(DATA)/minivoc

## demo: the main job
demo: data
	$(PY) -m seglab summary --data $(DATA)

## test: the whole test suite (what CI runs)
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

## test-slow: the slow checks (full-resolution forwards, torchrun)
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) $(OUT)/* build *.egg-info
	touch $(OUT)/.gitkeep
