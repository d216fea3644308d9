.PHONY: run test bench lint
run:  ## run the gateway locally (in-memory sessions) on :8000
	scripts/run-gateway.sh
test: ## install what is missing, then lint, type-check and run every test
	scripts/test.sh
bench: ## run the benchmarks and print ratios against their in-run baselines
	uv run --frozen python -m bench $(ARGS)
lint:
	uv run --frozen ruff check . && uv run --frozen ruff format --check . && uv run --frozen mypy
