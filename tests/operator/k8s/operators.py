"""Operator processes on the real control plane: started as the image starts them, by PID."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.k8s.controlplane import free_port

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class OperatorProcess:
    """``python -m llmhub_operator`` with its own log file, metrics and health ports."""

    env: dict[str, str]
    log_path: Path
    args: list[str] = field(default_factory=list)
    name: str = "operator"
    metrics_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        self.metrics_port = free_port()
        env = {**os.environ, **self.env, "POD_NAME": self.name}
        env.pop("CI", None)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "llmhub_operator",
                    f"--metrics-port={self.metrics_port}",
                    f"--health-port={free_port()}",
                    *self.args,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
            )
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        """SIGTERM: a graceful stop (a rolling update); SIGKILL: a crash."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.read().decode()

    def metric(self, name: str) -> float:
        """Sum of a metric's samples (0 when absent)."""
        total = 0.0
        for line in self.metrics().splitlines():
            match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.e+-]+)$", line)
            if match:
                total += float(match.group(2))
        return total

    def is_leader(self) -> bool:
        try:
            return self.alive and self.metric("llmhub_operator_leader") == 1.0
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
