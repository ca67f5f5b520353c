# harmonyset-hf: `make demo` runs the main job, `make test` runs every test.
# Both set themselves up: a virtual environment in .venv, CPU torch, and FFmpeg if missing.

VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.harmonyset-installed
DEMO_OUT ?= demo_out
PYTEST_ARGS ?=

.PHONY: all setup ffmpeg test demo lint clean

all: test

# torch first, from the local CPU wheel: a plain `torch` requirement resolved with nothing
# installed pulls the newest CUDA build (GBs). The constraints file keeps every later install on
# those CPU builds. lmms-eval pulls timm and torchvision; torchvision's PyPI builds do not import
# next to torch 2.13.0+cpu and break `transformers` imports, and timm (which imports torchvision)
# then breaks the `accelerate` command. Nothing here needs either, so both are removed.
$(STAMP): setup.py constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check torch==2.13.0
	$(PIP) install -q --disable-pip-version-check -c constraints.txt -e '.[all,dev]'
	-$(PIP) uninstall -y -q torchvision timm
	@touch $(STAMP)

setup: $(STAMP) ffmpeg

ffmpeg:
	@bash scripts/ensure_ffmpeg.sh

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/harmonyset demo --out $(DEMO_OUT)

lint: setup
	$(VENV)/bin/ruff check harmonyset_hf tests benchmarks loading_script tasks eval

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build *.egg-info
