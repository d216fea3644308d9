"""Local base images for the product Dockerfiles, made from Debian packages (no registry here).

- ``llmhub-local/debian``: ``debootstrap --variant=minbase bookworm`` then ``docker import``;
- ``llmhub-local/python``: that + Debian's python3 (3.11, as the release's ``python:3.11`` base)
  and pip, laid out as the upstream image (``python``, ``pip``, no EXTERNALLY-MANAGED);
- ``llmhub-local/node``: that Debian + Node from the npm ``node`` package and npm, laid out as
  the upstream ``node`` image (``/usr/local/bin/node``, ``/usr/local/lib/node_modules/npm``).

Each tag carries a key hashed from what it is made of (recipe, Node version taken from the
gateway Dockerfile's ``NODE_IMAGE`` tag), so the engine's data root under ``.cache/docker`` is
the cache: a later run with the same key reuses it, a changed need builds anew.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.containers.engine import ROOT, Engine, as_root

NPM_VERSION = "11.21.3"
DEBIAN_PYTHON = "3.11"  # bookworm's python3
PYTHON_LAYER = (
    "RUN apt-get update \\\n"
    " && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends"
    " python3 python3-pip ca-certificates \\\n"
    " && rm -rf /var/lib/apt/lists/* /usr/lib/python3.11/EXTERNALLY-MANAGED \\\n"
    " && ln -s /usr/bin/python3 /usr/local/bin/python \\\n"
    " && python --version && pip --version\n"
)
NODE_LAYER = (
    "COPY node /usr/local/bin/node\n"
    "COPY npm /usr/local/lib/node_modules/npm\n"
    "RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\\n"
    " && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\\n"
    " && node --version && npm --version\n"
)


def default_arg(dockerfile: Path, name: str) -> str:
    """The default of ``ARG NAME=...`` in a Dockerfile (the release's pinned base)."""
    match = re.search(rf"^ARG {name}=(\S+)", dockerfile.read_text(), re.M)
    if not match:
        raise ValueError(f"{dockerfile.name} has no ARG {name}")
    return match.group(1)


def node_version() -> str:
    """The Node version the gateway's release base pins (``node:24.20.0-bookworm-slim@...``)."""
    ref = default_arg(ROOT / "Dockerfile.gateway", "NODE_IMAGE")
    match = re.match(r"node:(\d+\.\d+\.\d+)-", ref)
    if not match:
        raise ValueError(f"NODE_IMAGE {ref} names no Node version")
    return match.group(1)


def python_minor() -> str:
    """The Python line both Dockerfiles' release base pins; Debian bookworm's python3 must match
    it (a Dockerfile moved to another line needs another local base, said here, not at run)."""
    minors = set()
    for component in ("operator", "gateway"):
        ref = default_arg(ROOT / f"Dockerfile.{component}", "PYTHON_IMAGE")
        match = re.match(r"python:(\d+\.\d+)\.\d+-", ref)
        if not match:
            raise ValueError(f"PYTHON_IMAGE {ref} names no Python version")
        minors.add(match.group(1))
    if minors != {DEBIAN_PYTHON}:
        raise ValueError(
            f"the Dockerfiles pin Python {sorted(minors)}; bookworm has {DEBIAN_PYTHON}"
        )
    return DEBIAN_PYTHON


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def debian_mirror() -> str:
    """The host's Debian mirror (deb822 sources), else deb.debian.org."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and line.rstrip("/").endswith("/debian"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


@dataclass
class Bases:
    """The three local bases, built once per key; ``timings`` says what each build took."""

    engine: Engine

    def __post_init__(self) -> None:
        self.timings: dict[str, float] = {}
        node = node_version()
        self.debian = f"llmhub-local/debian:bookworm-{_key('minbase', 'bookworm')}"
        python = python_minor()
        self.python = f"llmhub-local/python:{python}-bookworm-{_key(self.debian, PYTHON_LAYER)}"
        self.node = (
            f"llmhub-local/node:{node}-bookworm-{_key(self.debian, NODE_LAYER, node, NPM_VERSION)}"
        )

    def has(self, image: str) -> bool:
        return self.engine.docker("image", "inspect", image, check=False).returncode == 0

    def ensure(self) -> Bases:
        """Build whichever base is missing (Debian first: the others are made from it)."""
        for image, build in (
            (self.debian, self._debian),
            (self.python, self._python),
            (self.node, self._node),
        ):
            if not self.has(image):
                started = time.monotonic()
                build()
                self.timings[image] = time.monotonic() - started
        return self

    def _debian(self) -> None:
        if shutil.which("debootstrap") is None:
            raise RuntimeError("debootstrap not found: apt-get install debootstrap")
        with tempfile.TemporaryDirectory(dir=self.engine.home) as tmp:
            rootfs = Path(tmp) / "rootfs"
            try:
                self._import_rootfs(rootfs)
            finally:  # the rootfs is root's (debootstrap ran as root)
                subprocess.run(as_root(["rm", "-rf", str(rootfs)]), check=False)

    def _import_rootfs(self, rootfs: Path) -> None:
        _run(
            as_root(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), debian_mirror()])
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            _run(as_root(["find", str(rootfs / junk), "-maxdepth", "1", "-type", "f", "-delete"]))
        # the engine mounts each container's own resolv.conf
        _run(as_root(["truncate", "-s", "0", str(rootfs / "etc/resolv.conf")]))
        tar = subprocess.Popen(
            as_root(["tar", "-C", str(rootfs), "-c", "."]), stdout=subprocess.PIPE
        )
        assert tar.stdout is not None
        done = subprocess.run(
            ["docker", "import", "--change", 'CMD ["bash"]', "-", self.debian],
            stdin=tar.stdout,
            env=self.engine.env,
            capture_output=True,
            timeout=600,
            check=False,
        )
        tar.stdout.close()
        if tar.wait() != 0 or done.returncode != 0:
            raise RuntimeError(f"docker import failed: {done.stderr.decode()[-2000:]}")

    def _python(self) -> None:
        with tempfile.TemporaryDirectory(dir=self.engine.home) as tmp:
            ctx = Path(tmp)
            (ctx / "Dockerfile").write_text(f"FROM {self.debian}\n{PYTHON_LAYER}")
            self.build(ctx, self.python)

    def _node(self) -> None:
        """Node from the npm ``node`` package (its binary), npm from the npm ``npm`` package."""
        with tempfile.TemporaryDirectory(dir=self.engine.home) as tmp:
            ctx = Path(tmp)
            npm = ["npm", "--no-audit", "--no-fund", "--loglevel=error"]
            _run(
                [
                    *npm,
                    "install",
                    "--no-save",
                    "--prefix",
                    str(ctx / "get"),
                    f"node@{node_version()}",
                ]
            )
            shutil.copy2(ctx / "get/node_modules/node/bin/node", ctx / "node")
            _run([*npm, "pack", "--pack-destination", str(ctx), f"npm@{NPM_VERSION}"])
            (ctx / "npm").mkdir()
            _run(
                [
                    "tar",
                    "-xzf",
                    str(ctx / f"npm-{NPM_VERSION}.tgz"),
                    "-C",
                    str(ctx / "npm"),
                    "--strip-components=1",
                ]
            )
            shutil.rmtree(ctx / "get")
            (ctx / f"npm-{NPM_VERSION}.tgz").unlink()
            (ctx / "Dockerfile").write_text(f"FROM {self.debian}\n{NODE_LAYER}")
            self.build(ctx, self.node)

    def build(self, context: Path, tag: str, *args: str) -> None:
        """The classic builder (as ``az acr build``), host network for the package mirrors."""
        done = subprocess.run(
            ["docker", "build", "--network=host", "-q", "-t", tag, *args, str(context)],
            env={**self.engine.env, "DOCKER_BUILDKIT": "0"},
            capture_output=True,
            timeout=1800,
            check=False,
            cwd=context,
        )
        if done.returncode != 0:
            raise RuntimeError(f"docker build {tag} failed: {done.stderr.decode()[-4000:]}")


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {done.stderr.decode(errors='replace')[-2000:]}")
