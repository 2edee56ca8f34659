# Two commands: `make serve` starts the stack, `make test` runs the test suite.
# Both create and reuse the virtual environment in .venv/.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
TEST_STAMP := $(VENV)/.test-installed
BUNDLED_ENSEMBLE := model_repository/triton-qa--tiny-random-roberta-qa

.PHONY: serve test bench model_repository clean

serve: $(RUNTIME_STAMP) $(BUNDLED_ENSEMBLE)
	$(BIN)/triton-qa serve $(SERVE_ARGS)

test: $(TEST_STAMP) $(BUNDLED_ENSEMBLE)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The benchmark compares with the transformers pipeline, so it needs the test
# requirements too. BENCH_ARGS="--quick" gives a one-minute run.
bench: $(TEST_STAMP) $(BUNDLED_ENSEMBLE)
	$(BIN)/triton-qa bench $(BENCH_ARGS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==26.3

$(RUNTIME_STAMP): $(BIN)/python requirements/runtime.txt requirements/gateway.txt requirements/constraints.txt pyproject.toml
	$(BIN)/python -m pip install --quiet -r requirements/runtime.txt -c requirements/constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(TEST_STAMP): $(RUNTIME_STAMP) requirements/test.txt requirements/constraints.txt
	$(BIN)/python -m pip install --quiet -r requirements/test.txt -c requirements/constraints.txt
	touch $@

# The bundled repository is committed; this rebuilds it if it is missing,
# which needs PyTorch from the test requirements.
$(BUNDLED_ENSEMBLE):
	$(MAKE) $(TEST_STAMP)
	$(BIN)/python -c "from triton_qa.build import build_bundled_repository as b; b()"

model_repository: $(TEST_STAMP)
	$(BIN)/python -c "from triton_qa.build import build_bundled_repository as b; b()"

clean:
	rm -rf $(VENV) .cache .pytest_cache .hypothesis
