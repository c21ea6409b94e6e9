# seglab: every target creates .venv and installs the package on first use; a second run installs nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DATA   := data
OUT    := outputs

.PHONY: demo test test-slow notebooks bench bench-gpu gpu-check lint clean data chromium book docs

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (seglab)" >/dev/null
	touch $(STAMP)

## chromium: Debian's Chromium for the JupyterLab browser test (tests/test_browser.py), installed only when missing
CHROMIUM ?= /usr/bin/chromium
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@test -x $(CHROMIUM) || ! command -v apt-get >/dev/null || { \
	  echo "installing Debian's chromium for the browser test"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	@test -x $(CHROMIUM) || echo "note: no $(CHROMIUM) (not Debian/Ubuntu?): the browser test will be skipped"

## data: generate the synthetic MiniCity and MiniVOC datasets if they are missing
data: $(STAMP)
	test -d $(DATA)/minicity/leftImg8bit || $(PY) -m seglab synth minicity --out $(DATA)/minicity
	test -d $(DATA)/minivoc/VOCdevkit || $(PY) -m seglab synth minivoc --out $(DATA)/minivoc

## demo: the main job: data if missing, then every notebook with its demo parameters, then outputs/README.md
demo: data
	@$(MAKE) --no-print-directory notebooks

## notebooks: (re)execute notebooks/NN_*.ipynb in order with papermill into outputs/notebooks/, stop at the first
## failing one, then write the outputs index outputs/README.md
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
notebooks: $(STAMP)
	@mkdir -p $(OUT)/notebooks
	@start=$$(date +%s); for nb in $(NOTEBOOKS); do \
	  name=$$(basename $$nb); t0=$$(date +%s); echo "== $$name"; \
	  $(PY) -m papermill --kernel python3 --log-level WARNING --no-progress-bar $$nb $(OUT)/notebooks/$$name \
	    || { echo "error: notebook $$nb failed; the executed copy $(OUT)/notebooks/$$name shows the failing cell." \
	              "Fix it, then run 'make notebooks'" >&2; exit 1; }; \
	  echo "   $$name: $$(( $$(date +%s) - t0 )) s"; \
	done; echo "all notebooks executed in $$(( $$(date +%s) - start )) s"
	$(PY) docs/book.py stamp $(addprefix $(OUT)/notebooks/,$(notdir $(NOTEBOOKS)))
	$(PY) -m seglab report --out $(OUT)

## book: the executed notebooks of `make demo` (outputs/notebooks/) and the pages of docs/ as a static website,
## outputs/book/index.html (MkDocs + mkdocs-jupyter, offline, seconds); BOOK_NOTEBOOKS=DIR builds from another folder
BOOK_NOTEBOOKS ?= $(OUT)/notebooks
book: $(STAMP)
	$(PY) docs/reference.py
	$(PY) docs/book.py build --notebooks $(BOOK_NOTEBOOKS) --out $(OUT)/book

## docs: rewrite the generated reference pages (docs/options.md, cli.md, models.md, presets.md, README's notebook
## table) from the code
docs: $(STAMP)
	$(PY) docs/reference.py

## test: the whole test suite (what CI runs), including the JupyterLab browser test
test: $(STAMP) chromium
	$(PY) -m pytest -q -m "not slow"

## test-slow: the slow checks (full-resolution forwards, torchrun)
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

## bench: every benchmark side by side with its peer on this machine's CPU (about 90 min on 2 cores): CSV + PNG
## under outputs/benchmarks/, each ratio printed, then docs/performance.md (and outputs/benchmarks/summary.md)
BENCH_OUT  := $(OUT)/benchmarks
BENCH_DATA := $(DATA)/bench_minicity_1024x2048
bench: $(STAMP)
	test -d $(BENCH_DATA)/leftImg8bit || $(PY) -m seglab synth minicity --out $(BENCH_DATA) --train 16 --val 0 \
	  --test 0 --height 1024 --width 2048
	@mkdir -p $(BENCH_OUT) && rm -f $(BENCH_OUT)/ratios.csv
	$(PY) benchmarks/bench_masks.py --data $(BENCH_DATA) --repeat 3 --out $(BENCH_OUT)
	$(PY) benchmarks/bench_eval.py --frames 10 --repeat 3 --out $(BENCH_OUT)
	$(PY) benchmarks/bench_data.py --data $(BENCH_DATA) --repeat 3 --out $(BENCH_OUT)
	$(PY) benchmarks/bench_train.py --out $(BENCH_OUT)
	$(PY) benchmarks/bench_infer.py --out $(BENCH_OUT)
	$(PY) benchmarks/bench_recipe.py --ablation --out $(BENCH_OUT)
	$(PY) benchmarks/common.py $(BENCH_OUT)

## bench-gpu: the training and inference benchmarks on the CUDA GPU (*_gpu.csv / *_gpu.png next to the CPU ones)
bench-gpu: $(STAMP)
	$(PY) benchmarks/bench_train.py --device cuda --out $(BENCH_OUT)
	$(PY) benchmarks/bench_infer.py --device cuda --precisions fp32,bf16,fp16 --compare-precisions fp32,bf16 \
	  --warmup 3 --runs 10 --out $(BENCH_OUT)
	$(PY) benchmarks/common.py $(BENCH_OUT)

## gpu-check: everything that needs a CUDA GPU in about 5 minutes: the CUDA tests, every command in each precision,
## the demo preset against its target, short benchmarks at 1024x2048; one log and one table in outputs/gpu-check/
gpu-check: $(STAMP)
	@$(PY) benchmarks/gpu_check.py --out $(OUT)/gpu-check

clean:
	rm -rf $(VENV) $(OUT)/* build *.egg-info
	touch $(OUT)/.gitkeep
