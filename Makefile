# Two commands a newcomer needs (see README):
#   make study   install every env, then run the whole study on config/config.yaml
#   make test    install every env, then run the test suite (what CI runs)
#   make study-smollm2   the real study: SmolLM2-135M-Instruct on config/smollm2.yaml (README: its wall time)
PYTHON ?= python3
VENVS ?= .venv
SNAKEMAKE = $(VENVS)/workflow/bin/snakemake
RUFF = $(VENVS)/workflow/bin/ruff
SNAKEFMT = $(VENVS)/workflow/bin/snakefmt
PYTEST = $(VENVS)/workflow/bin/pytest

.PHONY: envs study study-smollm2 test unit lint dag bench clean

envs:
	$(PYTHON) -m tools.setup_envs

study: envs
	$(SNAKEMAKE)

# Stages HumanEval's code_eval into the config's offline cache (no network), then runs it.
study-smollm2: envs
	$(VENVS)/serve/bin/python -m quantstudy.stage --configfile config/smollm2.yaml
	$(SNAKEMAKE) --configfile config/smollm2.yaml

test: envs lint
	@# pytest exits 5 when it collects no test: not a failure of the code under test
	$(PYTEST) tests --durations=20; rc=$$?; if [ $$rc -eq 5 ]; then echo 'pytest collected no tests'; rc=0; fi; exit $$rc

unit: envs
	$(PYTEST) tests/unit

# ruff (lint + format) and snakefmt as configured in pyproject.toml, then Snakemake's own lint.
lint: envs
	$(RUFF) check .
	$(RUFF) format --check .
	$(SNAKEFMT) --check .
	$(SNAKEMAKE) --lint

dag: envs
	mkdir -p docs
	$(SNAKEMAKE) --rulegraph | dot -Tsvg > docs/rulegraph.svg
	$(SNAKEMAKE) --dag | dot -Tsvg > docs/dag.svg

bench: envs
	$(VENVS)/workflow/bin/python -m bench.study_time

clean:
	rm -rf results .snakemake
