# The two set-up commands of the README, and the main job.
.PHONY: setup test lint quickstart

setup:  ## create .venv and install the whole stack into it (idempotent)
	bash tools/install/setup_env.sh

test: lint  ## lint, then run the test suite (slow end-to-end tests included)
	.venv/bin/python -m pytest -q tests

lint:  ## ruff's linter and formatter check (settings in ruff.toml)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

quickstart:  ## the main job: train and evaluate on generated data, no download
	bash tools/quickstart.sh
