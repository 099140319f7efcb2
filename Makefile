# Two entry points: `make demo` and `make test`. Each sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint browser sandbox clean gpu-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'  # dev includes test: pytest, pytest-xdist, playwright
	touch $(STAMP)

# Debian's chromium for the browser tests; playwright's own browser download is never used.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; browser tests will be skipped"; \
	  else echo "warning: /usr/bin/chromium missing and not root; browser tests will be skipped"; fi; \
	fi

# Debian's bubblewrap confines scored submissions; without it `imhard score` falls back to unshare.
sandbox:
	@if ! command -v bwrap >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) \
	      || echo "warning: could not install bubblewrap; scoring falls back to unshare"; \
	  else echo "warning: bwrap missing and not root; scoring falls back to unshare"; fi; \
	fi

demo: $(STAMP) sandbox
	$(BIN)/imhard demo

# One pytest worker per CPU (pytest-xdist); see tests/conftest.py for what keeps them apart.
test: $(STAMP) browser sandbox
	$(BIN)/python -m pytest -q -n auto

# On a GPU machine: the gpu test suite (tests/gpu) and `imhard bench gpu`, one JSON report
# (gpu-check.json). Without a GPU: one line, exit 0, nothing installed.
gpu-check:
	@if ! command -v nvidia-smi >/dev/null 2>&1 && [ ! -e /dev/nvidiactl ]; then \
	  echo "gpu-check: no NVIDIA GPU here (no nvidia-smi, no /dev/nvidiactl); skipped"; exit 0; fi; \
	$(MAKE) --no-print-directory $(STAMP) sandbox && $(BIN)/python -m imagenet_hard.bench.gpu gpu-check.json

lint: $(STAMP)
	$(BIN)/ruff check imagenet_hard builders tests leaderboard

clean:
	rm -rf $(VENV) build *.egg-info
