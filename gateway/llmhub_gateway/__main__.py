"""``llmhub-gateway`` / ``python -m llmhub_gateway``: serve the app with uvicorn."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn

from llmhub_common.contract import GATEWAY_PORT
from llmhub_common.logging import configure
from llmhub_gateway.core.config import Settings
from llmhub_gateway.main import create_app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmhub-gateway", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a pod)")
    parser.add_argument("--port", type=int, default=GATEWAY_PORT)
    args = parser.parse_args(argv)
    settings = Settings()
    configure(settings.log_level)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
