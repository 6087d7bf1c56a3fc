# The two set-up commands of the README:
#   make demo   run the main job: a real local Flyte workflow with W&B in offline mode
#   make test   lint, type-check, run the test suite and build the docs
VENV := .venv
BIN := $(VENV)/bin

.PHONY: bootstrap demo test lint typecheck pytest docs bench

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	@$(BIN)/python -m flyteplugins.wandb.demo

lint: bootstrap
	$(BIN)/ruff check flyteplugins tests examples benchmarks
	$(BIN)/ruff format --check flyteplugins tests examples benchmarks

typecheck: bootstrap
	$(BIN)/mypy

pytest: bootstrap
	$(BIN)/python -m pytest -q --doctest-modules -o consider_namespace_packages=true flyteplugins/wandb
	$(BIN)/python -m pytest -q

docs: bootstrap
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: lint typecheck pytest docs

bench: bootstrap
	$(BIN)/python benchmarks/run.py
