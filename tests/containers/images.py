"""The product images, built from the real Dockerfiles with the local bases (tests/containers/
bases.py) by the classic builder, as ``az acr build`` builds them.

The host's CA bundle goes in as the optional build input (``build-ca/host.pem``): the registries
here are reached through a TLS-intercepting proxy only the host trusts. A marker line in that
file lets the tests prove no copy of it is left in a final image.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.containers.bases import Bases
from tests.containers.engine import ROOT, Engine

HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_CA = ROOT / "build-ca" / "host.pem"
CA_MARKER = "llmhub-build-ca-marker-5f1c0e"  # a PEM comment line: ignored by every TLS stack
COMPONENTS = ("operator", "gateway")


def tag(component: str) -> str:
    return f"llm-mcp-hub-{component}:contract"


def hand_in_host_ca() -> None:
    """Write the host's CA bundle (plus the marker) as the build's optional CA input."""
    text = f"# {CA_MARKER}\n" + (HOST_CA.read_text() if HOST_CA.exists() else "")
    if not BUILD_CA.exists() or BUILD_CA.read_text() != text:
        BUILD_CA.write_text(text)


@dataclass
class Images:
    """Both images; ``seconds`` is each build's wall time (near zero when layers are cached)."""

    engine: Engine
    bases: Bases
    seconds: dict[str, float] = field(default_factory=dict)

    def build(self, component: str, *, no_cache: bool = False) -> str:
        hand_in_host_ca()
        args = ["--build-arg", f"PYTHON_IMAGE={self.bases.python}"]
        if component == "gateway":
            args += ["--build-arg", f"NODE_IMAGE={self.bases.node}"]
        if no_cache:
            args.append("--no-cache")
        started = time.monotonic()
        done = subprocess.run(
            [
                "docker",
                "build",
                "--network=host",
                "-q",
                "-f",
                f"Dockerfile.{component}",
                "-t",
                tag(component),
                *args,
                ".",
            ],
            env={**self.engine.env, "DOCKER_BUILDKIT": "0"},
            cwd=ROOT,
            capture_output=True,
            timeout=1800,
            check=False,
        )
        self.seconds[component] = time.monotonic() - started
        if done.returncode != 0:
            raise RuntimeError(
                f"docker build Dockerfile.{component} failed: {done.stderr.decode()[-4000:]}"
            )
        return tag(component)

    def size(self, component: str) -> int:
        out = self.engine.docker("image", "inspect", "--format", "{{.Size}}", tag(component))
        return int(out.stdout.strip())
