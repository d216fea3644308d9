#!/usr/bin/env bash
# Runs the gateway alone on http://127.0.0.1:8000 with in-memory sessions (no cluster needed).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==0.13.9"
uv sync --frozen --quiet
exec uv run --frozen llmhub-gateway --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" "$@"
