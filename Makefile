# Set-up and checks that work on a fresh machine: each target makes the virtual environment it needs.
#   make demo   - install the Pi runtime (no torch) and run the demo on the bundled model
#   make test   - install everything (torch CPU, converters, test tools) and run lint + the test suite
#   make test-slow - the slow tests only (wheel installs, longer trainings), deselected by `make test`
#   make lint   - ruff (style and complexity caps), lint-imports (the layers, docs/ARCHITECTURE.md), vulture (unused code)
#   make arm64-check - the Pi path under arm64 emulation (qemu-user; 11-13 min, docs/PI.md)
#   make dist   - the wheel and sdist users install (dist/*.whl, dist/*.tar.gz; the bundled model inside)
#   make docs-images - the pictures in docs/img/, made again from the demo and the recorded bench results

PYTHON ?= python3
VENV ?= .venv
PI_VENV ?= .venv-pi
BUILD_VENV ?= .venv-build
# torch 2.13.0 CPU is the wheel this project's machines keep on disk; litert-torch needs torch < 2.15.
TORCH_SPEC ?= torch==2.13.0
PIP_FLAGS ?= -q --disable-pip-version-check
PYTEST_ARGS ?=

.PHONY: demo test test-slow lint firmware-test gameboy gameboy-check arm64-check clean dist docs-images

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/pip install $(PIP_FLAGS) "$(TORCH_SPEC)"
	$(VENV)/bin/pip install $(PIP_FLAGS) -e ".[all]"
	touch $@

$(PI_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(PI_VENV)
	$(PI_VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(PI_VENV)/bin/pip install $(PIP_FLAGS) -e ".[pi]"
	touch $@

demo: $(PI_VENV)/.installed
	$(PI_VENV)/bin/pxby-edge demo --force

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/vulture

firmware-test:
	@if [ -f firmware_bridge/firmware/Makefile ]; then $(MAKE) -C firmware_bridge/firmware test; fi

# The Game Boy link ROM (needs sdcc): rebuild it and compare with the shipped one (its tests run with the suite).
gameboy: $(VENV)/.installed
	$(MAKE) -C firmware_bridge/gameboy BUILD=$(CURDIR)/build/gameboy OUT=$(CURDIR)/build/gameboy/pxby-link.gb
	cmp build/gameboy/pxby-link.gb firmware_bridge/gameboy/pxby-link.gb

# What `make test` runs of it: the same, or one line saying it was skipped where sdcc is absent (a fresh
# machine; the ROM's own tests still run against the committed ROM). CI installs sdcc and sets
# REQUIRE_SDCC=1, so there a missing sdcc fails instead of skipping.
gameboy-check: $(VENV)/.installed
	@if command -v sdcc >/dev/null 2>&1 && command -v sdasgb >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory gameboy; \
	elif [ -n "$(REQUIRE_SDCC)" ]; then \
		echo "sdcc is not installed and REQUIRE_SDCC is set: apt-get install sdcc" >&2; exit 1; \
	else \
		echo "skipped the Game Boy ROM rebuild check: sdcc is not installed (apt-get install sdcc to run it)"; \
	fi

test: $(VENV)/.installed lint firmware-test gameboy-check
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-slow: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -m slow $(PYTEST_ARGS)

arm64-check:
	scripts/arm64-check

$(BUILD_VENV)/.installed:
	$(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/pip install $(PIP_FLAGS) build "setuptools>=68"
	touch $@

# --no-isolation: the build venv already holds the backend, so a rebuild needs no network
dist: $(BUILD_VENV)/.installed
	rm -rf dist build
	$(BUILD_VENV)/bin/python -m build --no-isolation --sdist --wheel --outdir dist .

# scripts/docs_images.py: tests/test_docs_images.py fails when a committed picture differs from what it makes
docs-images: $(VENV)/.installed
	$(VENV)/bin/python scripts/docs_images.py

clean:
	rm -rf $(VENV) $(PI_VENV) $(BUILD_VENV) dist .pytest_cache .ruff_cache .hypothesis build *.egg-info

# The full mutation fuzz of the bundled model file (10,000 mutants; PXBY_FUZZ_MODELS=N for another count).
.PHONY: fuzz-model
fuzz-model: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -p no:cacheprovider -m slow -s tests/test_model_fuzz.py -k full
