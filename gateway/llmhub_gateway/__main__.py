"""``llmhub-gateway`` / ``python -m llmhub_gateway``: serve the app with uvicorn."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from llmhub_common.contract import GATEWAY_ADMIN_PORT, GATEWAY_PORT
from llmhub_common.logging import configure
from llmhub_gateway.core.config import Settings, describe_invalid
from llmhub_gateway.main import create_app
from llmhub_gateway.server import serve


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmhub-gateway", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a pod)")
    parser.add_argument("--port", type=int, default=GATEWAY_PORT, help="callers' port")
    parser.add_argument(
        "--admin-port",
        type=int,
        default=GATEWAY_ADMIN_PORT,
        help="/metrics and /health/tokens (Prometheus, the operator); never the callers' port",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        sys.stderr.write(describe_invalid(exc) + "\n")
        return 2
    configure(settings.log_level)
    try:
        app = create_app(settings)
    except ValueError as exc:  # settings that only make sense together (caller auth modes)
        sys.stderr.write(f"invalid configuration:\n  {exc}\n")
        return 2
    serve(app, settings, host=args.host, port=args.port, admin_port=args.admin_port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
