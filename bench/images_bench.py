"""Image builds: wall time and size of both product images, built from the real Dockerfiles on
the local Debian bases (tests/containers) by the classic builder, cold against warm in one run.

Cold is the baseline: ``docker build --no-cache`` on the cached bases, what a machine with the
bases but no layer cache pays (the uv and npm downloads included); ``--cold-bases`` first
rebuilds the bases too (debootstrap, Debian's python3, Node from npm), what a fresh CI machine
pays. Warm is the same build again with the layer cache and nothing changed, what every later
test session pays. Ratios are cold over warm, the same run, the same machine.

    uv run python -m bench.images_bench [--quick] [--cold-bases]

``--quick`` (the smoke test) builds warm only and reports sizes.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from tests.containers.bases import Bases
from tests.containers.engine import Engine, EngineUnavailable
from tests.containers.images import COMPONENTS, Images

TARGET_WARM_S = 30.0  # a warm session must not pay a rebuild


@dataclass
class Row:
    name: str
    value: float
    unit: str
    baseline: float | None = None
    target: float | None = None

    def ratio(self) -> str:
        if self.baseline is None or self.value <= 0:
            return ""
        return f"{self.baseline / self.value:.1f}x"

    def missed(self) -> bool:
        return self.target is not None and self.value > self.target


def measure(engine: Engine, *, quick: bool, cold_bases: bool) -> list[Row]:
    rows: list[Row] = []
    bases = Bases(engine)
    if cold_bases:
        for image in (bases.debian, bases.python, bases.node):
            engine.docker("image", "rm", image, check=False)
    bases.ensure()
    for image, seconds in bases.timings.items():
        rows.append(Row(f"base {image.split(':')[0]} built (s)", seconds, "s"))
    images = Images(engine, bases)
    for component in COMPONENTS:
        cold = None
        if not quick:
            images.build(component, no_cache=True)
            cold = images.seconds[component]
            rows.append(Row(f"{component} cold build, no layer cache (s)", cold, "s"))
        images.build(component)
        rows.append(
            Row(
                f"{component} warm build, nothing changed (s)",
                images.seconds[component],
                "s",
                baseline=cold,
                target=TARGET_WARM_S,
            )
        )
        rows.append(Row(f"{component} image size (MB)", images.size(component) / 1e6, "MB"))
    for image in (bases.python, bases.node):
        out = engine.docker("image", "inspect", "--format", "{{.Size}}", image).stdout
        rows.append(Row(f"base {image.split(':')[0]} size (MB)", int(out) / 1e6, "MB"))
    return rows


def print_table(rows: list[Row]) -> None:
    print(f"{'measurement':<52} {'value':>9} {'target':>8} {'cold/warm':>10}")
    for row in rows:
        target = "" if row.target is None else f"<={row.target:g}"
        flag = "  MISSED" if row.missed() else ""
        print(f"{row.name:<52} {row.value:>9.1f} {target:>8} {row.ratio():>10}{flag}")


def main(argv: list[str] | None = None) -> int:
    """Exit 1 when a warm build misses its target, 2 when the bench could not run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="warm builds and sizes only")
    parser.add_argument("--cold-bases", action="store_true", help="rebuild the bases first")
    args = parser.parse_args(argv)
    engine = Engine()
    try:
        engine.start()
        rows = measure(engine, quick=args.quick, cold_bases=args.cold_bases)
    except (EngineUnavailable, RuntimeError) as exc:
        print(f"bench incomplete: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.stop()  # only one this bench started
    print_table(rows)
    return 1 if any(r.missed() for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
