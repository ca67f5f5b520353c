# harmonyset-hf: `make demo` runs the main job, `make test` runs every test.
# Both set themselves up: a virtual environment in .venv, CPU torch, FFmpeg if missing, and every
# Python package at the version pinned in requirements.lock (the tested environment).

VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.harmonyset-installed
LOCK   := requirements.lock
DEMO_OUT ?= demo_out
PYTEST_ARGS ?=
# The tool that writes requirements.lock, pinned so that `make lock` is reproducible too.
UV_VERSION := 0.13.8
# What the lock is resolved for: CPU torch on linux x86_64, Python 3.11 (see NOTES.md).
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-manylinux_2_28
# Where the CPU build of torch comes from when resolving: this machine's wheel folder; elsewhere
# give PyTorch's CPU index, e.g. `make lock TORCH_SOURCE="--extra-index-url <cpu index url>"`.
TORCH_SOURCE ?= $(if $(wildcard /opt/wheels),--find-links /opt/wheels)

.PHONY: all setup ffmpeg test test-clean-room demo lint lock check-latest dist clean

all: test

# torch first, from the local CPU wheel: a plain `torch` requirement resolved with nothing
# installed pulls the newest CUDA build (GBs). Then everything else, constrained by the lock, so
# a fresh machine gets exactly the versions the suite passed with (an unpinned install drifted:
# filelock 4.3 broke every lmms-eval run without a change here). lmms-eval pulls timm and
# torchvision; torchvision's PyPI builds do not import next to torch 2.13.0+cpu and break
# `transformers` imports, and timm (which imports torchvision) then breaks the `accelerate`
# command. Nothing here needs either, so both are removed after the install.
$(STAMP): setup.py $(LOCK)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q torch==$$(sed -n 's/^torch==\([0-9.]*\).*/\1/p' $(LOCK))
	$(PIP) install -q -c $(LOCK) -e '.[all,dev]'
	-$(PIP) uninstall -y -q torchvision timm
	@touch $(STAMP)

setup: $(STAMP) ffmpeg

ffmpeg:
	@bash scripts/ensure_ffmpeg.sh

# Every test, then the clean-room check of the wheel (built, installed into a new venv with the
# lock, used from a folder outside the checkout).
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-clean-room

test-clean-room: setup
	$(PY) scripts/clean_room.py --lock $(LOCK)

demo: setup
	$(VENV)/bin/harmonyset demo --out $(DEMO_OUT)

lint: setup
	$(VENV)/bin/ruff check harmonyset_hf tests benchmarks loading_script eval scripts

# Regenerate the lock from setup.py's extras. Existing pins are kept unless setup.py needs
# otherwise; `make lock UPGRADE=1` moves every package to its newest allowed version.
lock:
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q uv==$(UV_VERSION)
	$(VENV)/bin/uv pip compile setup.py --extra all --extra dev $(LOCK_TARGET) \
		-c constraints.txt $(TORCH_SOURCE) $(if $(UPGRADE),--upgrade) \
		--custom-compile-command 'make lock' -o $(LOCK)

# Not in CI: a throwaway venv with the newest versions setup.py allows, the suite run in it, and
# what changed against the lock and what broke.
check-latest:
	bash scripts/check_latest.sh $(LOCK)

dist: setup
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build dist *.egg-info
