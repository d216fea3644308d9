"""A real gateway process with EchoProviders, for multi-replica tests: ``python -m
tests.gateway.serve --port N`` (config from the same env vars as production, served with the
production server: drain on SIGTERM included)."""

from __future__ import annotations

import argparse

from llmhub_common.logging import configure
from llmhub_gateway.core.config import Settings
from llmhub_gateway.main import create_app
from llmhub_gateway.server import serve
from tests.gateway.fake_provider import echo_providers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--admin-port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings()
    configure(settings.log_level)
    serve(
        create_app(settings, providers=echo_providers()),
        settings,
        host="127.0.0.1",
        port=args.port,
        admin_port=args.admin_port,
    )


if __name__ == "__main__":
    main()
