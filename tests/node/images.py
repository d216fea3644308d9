"""The images the real-node tier runs, built with the container tier's engine, bases and cache
(tests/containers) and imported into the node's containerd (no registry: ``docker save | ctr
images import``). Tags are kind/e2e.sh's (``:e2e``), so both read the same values files.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.containers.bases import Bases
from tests.containers.engine import ROOT, Engine, as_root
from tests.containers.images import Images

HERE = Path(__file__).resolve().parent
TAG = "e2e"
OPERATOR = f"llm-mcp-hub-operator:{TAG}"
GATEWAY = f"llm-mcp-hub-gateway:{TAG}"
GATEWAY_FAKES = f"llm-mcp-hub-gateway-fakes:{TAG}"
FAKE_AZURE = f"llm-mcp-hub-fake-azure:{TAG}"
REDIS = f"llm-mcp-hub-redis-local:{TAG}"  # charts/llm-mcp-hub/ci/node-values.yaml
CLIENT = f"llm-mcp-hub-node-client:{TAG}"
# The openai client and what it needs beyond the gateway image (its httpx2, pydantic and anyio
# come with the gateway's mcp and fastapi; copied anyway where cheap, at the locked versions).
CLIENT_MODULES = ("openai", "jiter", "sniffio", "httpx2")


@dataclass
class NodeImages:
    """Builds (cached layers make a warm run cheap) and imports; ``seconds`` per step."""

    engine: Engine
    seconds: dict[str, float] = field(default_factory=dict)

    def build(self) -> list[str]:
        started = time.monotonic()
        bases = Bases(self.engine).ensure()
        product = Images(self.engine, bases)
        for component, name in (("operator", OPERATOR), ("gateway", GATEWAY)):
            self.engine.docker("tag", product.build(component), name)
        bases.build(
            ROOT,
            GATEWAY_FAKES,
            *("-f", "kind/Dockerfile.gateway-fakes", "--build-arg", f"GATEWAY_IMAGE={GATEWAY}"),
        )
        bases.build(
            ROOT,
            FAKE_AZURE,
            *("-f", "kind/Dockerfile.fake-azure", "--build-arg", f"PYTHON_IMAGE={bases.python}"),
        )
        with tempfile.TemporaryDirectory() as tmp:
            ctx = Path(tmp)
            shutil.copy(HERE / "Dockerfile.redis", ctx / "Dockerfile")
            bases.build(ctx, REDIS, "--build-arg", f"DEBIAN_IMAGE={bases.debian}")
        with tempfile.TemporaryDirectory() as tmp:
            ctx = Path(tmp)
            shutil.copy(HERE / "Dockerfile.client", ctx / "Dockerfile")
            _copy_modules(ctx / "site")
            bases.build(ctx, CLIENT, "--build-arg", f"GATEWAY_IMAGE={GATEWAY_FAKES}")
        self.seconds["build"] = time.monotonic() - started
        return [OPERATOR, GATEWAY, GATEWAY_FAKES, FAKE_AZURE, REDIS, CLIENT]

    def import_into(self, socket: Path, images: list[str]) -> None:
        """One ``docker save`` of all of them (shared layers once) into the node's containerd;
        skipped when its store (kept in .cache, see node.py) already holds these very builds."""
        started = time.monotonic()
        ids = self.engine.docker("image", "inspect", "--format", "{{.Id}}", *images)
        wanted = dict(zip(images, ids.stdout.decode().split(), strict=True))
        stamp = socket.parent / "imported.json"
        if _read(stamp) == wanted and set(images) <= _held(socket):
            self.seconds["import"] = time.monotonic() - started
            return
        save = subprocess.Popen(
            ["docker", "save", *images], env=self.engine.env, stdout=subprocess.PIPE
        )
        done = subprocess.run(
            _ctr(socket, "images", "import", "-"),
            stdin=save.stdout,
            capture_output=True,
            timeout=900,
            check=False,
        )
        if save.stdout is not None:
            save.stdout.close()
        if save.wait(60) != 0 or done.returncode != 0:
            raise RuntimeError(
                f"image import failed: {done.stderr.decode(errors='replace')[-2000:]}"
            )
        stamp.write_text(json.dumps(wanted))
        self.seconds["import"] = time.monotonic() - started


def _ctr(socket: Path, *args: str) -> list[str]:
    return as_root(["ctr", "-a", str(socket), "-n", "k8s.io", *args])


def _read(stamp: Path) -> Any:
    try:
        return json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None


def _held(socket: Path) -> set[str]:
    """The images the node's containerd holds, by the short names the pods use."""
    done = subprocess.run(
        _ctr(socket, "images", "ls", "-q"), capture_output=True, text=True, check=False
    )
    return {line.removeprefix("docker.io/library/") for line in done.stdout.split()}


def _copy_modules(site: Path) -> None:
    """The client modules as this venv has them (the locked versions), with their metadata."""
    site.mkdir()
    for name in CLIENT_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"{name} is not installed in the suite's venv (uv sync --frozen)")
        package = Path(spec.origin).parent
        shutil.copytree(package, site / name, ignore=shutil.ignore_patterns("__pycache__"))
        for info in package.parent.glob(f"{name}-*.dist-info"):
            shutil.copytree(info, site / info.name)
