"""A real gateway process with EchoProviders, for multi-replica tests: ``python -m
tests.gateway.serve --port N`` (config from the same env vars as production)."""

from __future__ import annotations

import argparse

import uvicorn

from llmhub_gateway.core.config import Settings
from llmhub_gateway.main import create_app
from tests.gateway.fake_provider import echo_providers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = create_app(Settings(), providers=echo_providers())
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
