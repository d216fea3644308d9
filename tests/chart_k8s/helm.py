"""Real `helm` against the test control plane, with a HOME of its own (~/.kube stays untouched)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.chart.conftest import CHART, helm
from tests.k8s.controlplane import ControlPlane


@dataclass
class Helm:
    """helm with ``--kubeconfig`` of one control plane; HOME, caches and config in a temp dir."""

    plane: ControlPlane
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="helm-home-")))

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBE"))}
        env.update(
            HOME=str(self.home),
            HELM_CACHE_HOME=str(self.home / "cache"),
            HELM_CONFIG_HOME=str(self.home / "config"),
            HELM_DATA_HOME=str(self.home / "data"),
            KUBECACHEDIR=str(self.home / "kube-cache"),
        )
        return env

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [helm(), *args, "--kubeconfig", str(self.plane.kubeconfig)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self.env(),
        )

    def must(self, *args: str, timeout: float = 60) -> str:
        done = self.run(*args, timeout=timeout)
        assert done.returncode == 0, f"helm {' '.join(args[:2])}: {done.stdout}{done.stderr}"
        return done.stdout

    def install(
        self, release: str, namespace: str, values: dict[str, Any], chart: Path = CHART
    ) -> str:
        """`helm install` (no --wait: without a kubelet no pod ever runs)."""
        return self.must(
            "install", release, str(chart), "-n", namespace, "-f", str(self.values(values))
        )

    def upgrade(
        self, release: str, namespace: str, values: dict[str, Any], chart: Path = CHART
    ) -> str:
        return self.must(
            "upgrade", release, str(chart), "-n", namespace, "-f", str(self.values(values))
        )

    def uninstall(self, release: str, namespace: str) -> str:
        """`helm uninstall --wait`: returns once every release object is gone from the API."""
        return self.must("uninstall", release, "-n", namespace, "--wait", "--timeout", "30s")

    def manifest(self, release: str, namespace: str) -> list[dict[str, Any]]:
        text = self.must("get", "manifest", release, "-n", namespace)
        return [d for d in yaml.safe_load_all(text) if d]

    def values(self, values: dict[str, Any]) -> Path:
        path = self.home / f"values-{uuid.uuid4().hex[:8]}.yaml"
        path.write_text(yaml.safe_dump(values))
        return path
