# One command to set up and run, one to set up and test.
# On machines with the local CPU wheel of torch 2.13.0 (our dev and CI boxes) we pin it, so pip
# never pulls a multi-GB CUDA build; everywhere else users get their normal torch.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= $(if $(wildcard /opt/wheels/torch-2.13.0*),torch==2.13.0,)

.PHONY: install run demo test lint bench package clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(TORCH_PIN),$(PY) -m pip install -q $(TORCH_PIN))
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	@if [ -z "$$DISPLAY$$WAYLAND_DISPLAY$$QT_QPA_PLATFORM" ]; then \
	  echo "No display found: running the headless demo instead (graft demo --out out/demo)."; \
	  $(VENV)/bin/graft demo --out out/demo --force; \
	else \
	  $(VENV)/bin/graft-gui --demo; \
	fi

demo: install
	$(VENV)/bin/graft demo --out out/demo --force

test: install
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/lint-imports
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider

lint: install
	$(VENV)/bin/ruff check app core tests benchmarks
	$(VENV)/bin/ruff format --check app core tests benchmarks
	$(VENV)/bin/lint-imports

bench: install
	$(PY) benchmarks/run_all.py

package: install
	$(PY) -m pip install -q -e '.[package]'
	$(VENV)/bin/pyinstaller --noconfirm --distpath dist --workpath build/pyinstaller packaging/graft.spec
	@# Smoke test of the bundle: open the demo, preview it, materialise it in a job child, screenshot.
	QT_QPA_PLATFORM=$${QT_QPA_PLATFORM:-offscreen} GRAFT_SETTINGS_PATH=build/self-test/graft.ini \
	  dist/graft/graft --self-test build/self-test/graft.png
	@echo "bundle: dist/graft/graft (self-test passed, screenshot in build/self-test/graft.png)"

clean:
	rm -rf build dist out .pytest_cache
