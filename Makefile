# genimg-course: `make lab` to open the course, `make test` to test it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=
# TORCH=cpu: PyTorch's CPU-only wheels (no CUDA libraries), installed before the rest; TORCH=cu126 etc. likewise.
# Empty (the default): whatever pip picks from PyPI, which works everywhere.
TORCH  ?=
TORCH_INDEX := https://download.pytorch.org/whl/$(TORCH)
# Jupyter refuses to run as root (containers, some cloud VMs) unless told to.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
# nbval: lax mode (only cells marked # NBVAL_CHECK_OUTPUT compare outputs), in this environment's kernel,
# with a modest per-cell timeout (nbval waits out the whole timeout when a kernel dies).
NBVAL  := --nbval-lax --nbval-current-env --nbval-cell-timeout=120 --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

.PHONY: lab test unit nbval notebooks doctor grade clean test-browser site
SUBMISSIONS ?= submissions
OUT         ?= graded

$(BIN)/genimg: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH),$(BIN)/python -m pip install --quiet --index-url $(TORCH_INDEX) torch torchvision)
	$(BIN)/python -m pip install --quiet -e ".[dev,nbgrader]"
	touch $(BIN)/genimg

lab: $(BIN)/genimg  ## create .venv, install the course, copy new lessons into mywork/ (never over yours), start JupyterLab there
	$(BIN)/genimg workspace
	cd mywork && ../$(BIN)/jupyter lab $(ROOT_FLAG) $(ARGS)

test: unit nbval  ## the whole suite: unit tests, then every notebook under nbval (profile ci)

unit: $(BIN)/genimg
	GENIMG_PROFILE=ci $(BIN)/python -m pytest tests $(ARGS)

nbval: $(BIN)/genimg
	GENIMG_PROFILE=ci $(BIN)/python -m pytest $(NBVAL) notebooks $(ARGS)
	GENIMG_PROFILE=ci GENIMG_STRICT=1 $(BIN)/python -m pytest $(NBVAL) solutions $(ARGS)

notebooks: $(BIN)/genimg  ## rebuild notebooks/ from solutions/ (and strip outputs from solutions/)
	$(BIN)/genimg notebooks

doctor: $(BIN)/genimg
	$(BIN)/genimg doctor

grade: $(BIN)/genimg  ## grade handed-in notebooks: make grade SUBMISSIONS=folder OUT=graded ARGS="-j 2"
	$(BIN)/genimg grade $(SUBMISSIONS) --out $(OUT) $(ARGS)

# The browser test and the course site (README: "Browser test and course site").
PROFILE ?= cpu
SITE    ?= site

$(BIN)/playwright: $(BIN)/genimg  # Playwright for Python only: it drives the system's Chromium, no browser download
	$(BIN)/python -m pip install --quiet -e ".[dev,nbgrader,browser]"
	touch $(BIN)/playwright

test-browser: $(BIN)/playwright  ## JupyterLab in headless Chromium, then the course site (ci profile); needs `chromium`
	GENIMG_BROWSER=$${GENIMG_BROWSER:-1} $(BIN)/python -m pytest tests/browser $(ARGS)

site: $(BIN)/genimg  ## run every solved notebook in PROFILE (default cpu) and render SITE/index.html (default site/)
	$(BIN)/python -m genimg_course.course.site --profile $(PROFILE) --out $(SITE)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
