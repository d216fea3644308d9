"""`make bench` / `python -m bench [--quick] [SUITE ...]`: every benchmark in turn."""

from __future__ import annotations

import argparse
import importlib
import sys

SUITES = {
    "operator": "bench.operator_bench",
    "gateways": "bench.gateways_bench",
    "gateway": "bench.gateway_bench",
    "runtime": "bench.runtime_bench",
    "images": "bench.images_bench",
    "masking": "bench.masking_bench",
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small bounded runs (smoke tests)")
    parser.add_argument(
        "suites",
        nargs="*",
        metavar="SUITE",
        help="operator, gateways, gateway, runtime, images, masking (default: all)",
    )
    args = parser.parse_args()
    unknown = sorted(set(args.suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    worst = 0
    for name in args.suites or list(SUITES):
        print(f"\n=== {name} benchmark ===", flush=True)
        module = importlib.import_module(SUITES[name])
        worst = max(worst, module.main(["--quick"] if args.quick else []))
    return worst


if __name__ == "__main__":
    sys.exit(main())
