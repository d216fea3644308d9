#!/usr/bin/env bash
# Runs the gateway alone on http://127.0.0.1:8000 with in-memory sessions (no cluster needed).
# Callers are not authenticated here (AUTH_MODES=none, chosen explicitly; the gateway warns at
# start); set AUTH_MODES (and its settings, see docs/gateway.md) to try the identity modes.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==0.13.9"
uv sync --frozen --quiet
export AUTH_MODES="${AUTH_MODES:-none}"
exec uv run --frozen llmhub-gateway --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" "$@"
