"""``llm-mcp-hub`` / ``python -m llmhub_cli``."""

from __future__ import annotations

from llmhub_cli.app import main

if __name__ == "__main__":
    raise SystemExit(main())
