# genimg-course: `make lab` to open the course, `make test` to test it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=
# Jupyter refuses to run as root (containers, some cloud VMs) unless told to.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
# nbval: lax mode (only cells marked # NBVAL_CHECK_OUTPUT compare outputs), in this environment's kernel,
# with a modest per-cell timeout (nbval waits out the whole timeout when a kernel dies).
NBVAL  := --nbval-lax --nbval-current-env --nbval-cell-timeout=120 --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

.PHONY: lab test unit nbval notebooks doctor grade clean
SUBMISSIONS ?= submissions
OUT         ?= graded

$(BIN)/genimg: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(BIN)/genimg

lab: $(BIN)/genimg  ## create .venv, install the course, start JupyterLab in notebooks/
	cd notebooks && ../$(BIN)/jupyter lab $(ROOT_FLAG) $(ARGS)

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

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
