# Set-up and checks that work on a fresh machine: each target makes the virtual environment it needs.
#   make demo   - install the Pi runtime (no torch) and run the demo on the bundled model
#   make test   - install everything (torch CPU, converters, test tools) and run lint + the test suite
#   make arm64-check - the Pi path under arm64 emulation (qemu-user; 11-13 min, docs/PI.md)

PYTHON ?= python3
VENV ?= .venv
PI_VENV ?= .venv-pi
# torch 2.13.0 CPU is the wheel this project's machines keep on disk; litert-torch needs torch < 2.15.
TORCH_SPEC ?= torch==2.13.0
PIP_FLAGS ?= -q --disable-pip-version-check
PYTEST_ARGS ?=

.PHONY: demo test lint firmware-test gameboy arm64-check clean

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

firmware-test:
	@if [ -f firmware_bridge/firmware/Makefile ]; then $(MAKE) -C firmware_bridge/firmware test; fi

# The Game Boy link ROM (needs sdcc): rebuild it, compare with the shipped one, run the Game Boy tests.
gameboy: $(VENV)/.installed
	$(MAKE) -C firmware_bridge/gameboy BUILD=$(CURDIR)/build/gameboy OUT=$(CURDIR)/build/gameboy/pxby-link.gb
	cmp build/gameboy/pxby-link.gb firmware_bridge/gameboy/pxby-link.gb
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) tests/test_gameboy_rom.py tests/test_gameboy.py

test: $(VENV)/.installed lint firmware-test gameboy
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

arm64-check:
	scripts/arm64-check

clean:
	rm -rf $(VENV) $(PI_VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info
