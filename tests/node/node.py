"""A real single-node cluster for the real-node tier: the project's control plane fixture
(tests/k8s/controlplane.py: free ports, temp dir, stopped by PID) joined by a node that runs
pods, started and stopped by ``scripts/start-node.sh`` / ``scripts/stop-node.sh`` here (the
node reference shipped beside ``kubelet.gz`` in ../shared/k8s, vendored so CI has them too).

Why those scripts and not Python of our own: they are the proven recipe for this node
(containerd config, bridge CNI, the egress rules that keep every pod packet on this machine,
cluster DNS, the API relay, and a stop that drains, stops by pid file and removes its bridges
and rules); a rewrite would be a second copy to keep in step. Their state lives in the control
plane's temp dir; the kubelet, kube-proxy, kube-scheduler and pause binaries come from
KUBEBUILDER_ASSETS as the control plane's do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.containers.engine import as_root
from tests.k8s.controlplane import DEFAULT_ASSETS, ROOT, ControlPlane

HOW_TO_GET = (
    "the real-node tier needs root (or password-less sudo), kubectl, openssl, curl and the node "
    "binaries kubelet, kube-proxy, kube-scheduler and pause in KUBEBUILDER_ASSETS "
    "(scripts/bootstrap.sh unpacks them from ../shared/k8s; CI: .github/workflows/test.yml)"
)
SCRIPTS = Path(__file__).resolve().parent / "scripts"
CONTAINERD_CACHE = ROOT / ".cache" / "node" / "containerd"
NODE_BINARIES = ("kubelet", "kube-proxy", "kube-scheduler", "pause")
# Bounds how late a Secret volume update reaches a running pod (upstream: 1m). The operator
# rolls pods on rotation, so only the start-up matters; short keeps nothing waiting on it.
SYNC_FREQUENCY = "10s"
# The API server reaches the kubelet (logs, exec) by the node's name first, and the kubelet
# listens on 127.0.0.1: a name that resolves there on any machine (a CI runner's hostname
# resolves to its own address).
NODE_NAME = "localhost"


class NodeUnavailable(RuntimeError):
    """Something the node needs is missing on this machine."""


def assets_dir() -> Path:
    return Path(os.environ.get("KUBEBUILDER_ASSETS") or DEFAULT_ASSETS).resolve()


def check_prerequisites() -> None:
    """Raise NodeUnavailable naming what is missing (the caller fails in CI, skips elsewhere)."""
    missing = [b for b in NODE_BINARIES if not os.access(assets_dir() / b, os.X_OK)]
    missing += [t for t in ("kubectl", "openssl", "curl") if shutil.which(t) is None]
    if subprocess.run(as_root(["true"]), capture_output=True, check=False).returncode != 0:
        missing.append("root")
    if missing:
        raise NodeUnavailable(f"missing: {', '.join(missing)}; {HOW_TO_GET}")


@dataclass
class Node:
    """The node joined to ``plane``; ``kubectl()`` speaks to the cluster as admin."""

    plane: ControlPlane
    started: bool = False

    @property
    def socket(self) -> Path:
        return self.plane.workdir / "containerd" / "containerd.sock"

    def _env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "K8S_HOME": str(self.plane.workdir),
            "KUBEBUILDER_ASSETS": str(assets_dir()),
            "KUBELET_SYNC_FREQUENCY": SYNC_FREQUENCY,
            "NODE_NAME": NODE_NAME,
            **extra,
        }

    def _script(self, name: str, timeout: float, **extra: str) -> subprocess.CompletedProcess[str]:
        env = self._env(**extra)
        keep = (
            "K8S_HOME",
            "KUBEBUILDER_ASSETS",
            "KUBELET_SYNC_FREQUENCY",
            "NODE_NAME",
            "PURGE",
            "PATH",
        )
        cmd = [str(SCRIPTS / name)]
        if os.geteuid() != 0:  # sudo drops the environment: hand the script's variables over
            cmd = ["sudo", "-n", "env", *(f"{k}={env[k]}" for k in keep if k in env), *cmd]
        return subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def start(self) -> Node:
        self.started = True  # a half-started node is still stopped (the scripts are idempotent)
        # containerd's store outlives the run (as .cache/docker does): a warm run re-imports
        # no image. Everything else of the node lives and dies in the temp dir.
        CONTAINERD_CACHE.mkdir(parents=True, exist_ok=True)
        link = self.plane.workdir / "containerd"
        if not link.exists():
            link.symlink_to(CONTAINERD_CACHE, target_is_directory=True)
        done = self._script("start-node.sh", 300)
        if done.returncode != 0:
            raise RuntimeError(f"start-node.sh failed ({done.returncode}):\n{done.stderr[-4000:]}")
        return self

    def stop(self) -> str:
        """Drain, stop by pid files, remove bridges and rules and the node's state (PURGE)."""
        if not self.started:
            return ""
        self.started = False
        done = self._script("stop-node.sh", 300, PURGE="1")
        return done.stderr

    # -- kubectl -----------------------------------------------------------------------------

    def kubectl(
        self, *args: str, stdin: str | None = None, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.plane.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args[:4])}: {done.stdout}{done.stderr}")
        return done

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))


def wait_until(
    what: str, probe: Callable[[], Any], *, timeout: float = 180, every: float = 1.0
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except (AssertionError, subprocess.SubprocessError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
