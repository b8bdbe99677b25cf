# The README's two commands: `make demo` and `make test` (`make test-fast` for the inner loop). All set up
# .venv first (idempotent).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q

.PHONY: demo test test-fast setup setup-dev clean

# Runtime only (no torch): what a user needs to edit photos with the shipped model.
$(BIN)/faceedit: pyproject.toml
	$(PY) -m venv $(VENV)
	$(PIP) -e '.[openvino]'
	touch $@

setup: $(BIN)/faceedit

# Everything the tests need. torch is pinned first: on this kind of machine that pin installs the local
# CPU wheel, while any other spec would download a multi-GB CUDA build.
# nvidia-pytriton carries the Triton server tests/test_triton_server.py starts; without its dependencies, which
# would pin numpy<2 (see pyproject's triton extra). Its wheel needs glibc 2.35+: where it cannot install,
# that test says so and skips.
$(VENV)/.dev: $(BIN)/faceedit
	$(PIP) 'torch==2.13.0'
	$(PIP) -e '.[train,openvino,dev]'
	$(PIP) --no-deps 'nvidia-pytriton==0.7.0' || echo "nvidia-pytriton did not install (Linux, glibc 2.35+): the Triton server test will skip"
	touch $@

setup-dev: $(VENV)/.dev

demo: $(BIN)/faceedit
	$(BIN)/faceedit run --image examples/astronaut.jpg --set young=1 --set black_hair=1 --out astronaut-edited.png
	$(BIN)/faceedit run --image examples/astronaut.jpg --set blond_hair=1 --set smiling=0 --out astronaut-blond.png

test: $(VENV)/.dev
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

# The inner loop: everything but the slow, browser and GPU tests (make test still runs them all).
test-fast: $(VENV)/.dev
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow and not browser and not gpu" tests

clean:
	rm -rf $(VENV) *.egg-info
