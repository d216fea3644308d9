"""A Docker engine the container tier starts itself: data, exec root, socket and pid file under
``.cache/docker``, stopped by PID at the end of the session. A dockerd this module did not start
is never stopped (one already answering on the same socket is used as it is).

It stays out of the host's network: a bridge of its own (``llmhub-dock0``, made here and removed
at stop) instead of ``docker0``, which a system engine may own, and no iptables rules and no
forwarding changes (``--iptables=false``: Docker would otherwise set the FORWARD policy to DROP
and break the real-node tier's pod network). Published ports reach containers through Docker's
userland proxy on 127.0.0.1; builds and the operator use the host network.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "docker"
BRIDGE, BRIDGE_CIDR = "llmhub-dock0", "172.30.77.1/24"
HOW_TO_GET = (
    "dockerd or debootstrap not found: run scripts/bootstrap.sh as root "
    "(apt-get install docker.io debootstrap)"
)


def as_root(cmd: list[str]) -> list[str]:
    """``cmd`` as root: as it is when we are root, else through ``sudo -n`` (a CI runner's user
    has password-less sudo; sudo relays our signals, so the engine is still stopped by PID)."""
    return cmd if os.geteuid() == 0 else ["sudo", "-n", *cmd]


class EngineUnavailable(RuntimeError):
    """No Docker engine can run on this machine (not installed, or it does not start)."""


@dataclass
class Engine:
    """One dockerd on a private unix socket; ``docker()`` runs the client against it."""

    # LLMHUB_DOCKER_HOME: another home (a second engine, or the tier's own tests of this one)
    home: Path = field(
        default_factory=lambda: Path(os.environ.get("LLMHUB_DOCKER_HOME") or CACHE).resolve()
    )
    started_pid: int | None = None
    made_bridge: bool = False

    @property
    def socket(self) -> Path:
        return self.home / "docker.sock"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}"}

    def docker(
        self, *args: str, timeout: float = 120.0, check: bool = True, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """``docker ARGS`` against this engine; failures raise with the client's stderr."""
        done = subprocess.run(
            ["docker", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"docker {' '.join(args[:3])} failed ({done.returncode}): "
                f"{done.stderr.decode(errors='replace')[-3000:]}"
            )
        return done

    def answers(self) -> bool:
        if not self.socket.exists():
            return False
        return self.docker("version", timeout=20, check=False).returncode == 0

    def start(self, timeout: float = 60.0) -> Engine:
        """Use the engine on our socket if it answers; else start dockerd and wait for it."""
        if self.answers():
            return self
        dockerd = shutil.which("dockerd")
        if dockerd is None or shutil.which("docker") is None:
            raise EngineUnavailable(HOW_TO_GET)
        if subprocess.run(as_root(["true"]), capture_output=True, check=False).returncode != 0:
            raise EngineUnavailable("dockerd needs root: run as root or with password-less sudo")
        for sub in ("data", "exec"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self._bridge_up()
        pidfile = self.home / "dockerd.pid"
        pidfile.unlink(missing_ok=True)  # no engine answers on it: a stale file
        log = (self.home / "dockerd.log").open("ab")
        proc = subprocess.Popen(
            as_root(
                [
                    dockerd,
                    f"--data-root={self.home / 'data'}",
                    f"--exec-root={self.home / 'exec'}",
                    f"--pidfile={pidfile}",
                    f"--host=unix://{self.socket}",
                    f"--bridge={BRIDGE}",
                    "--iptables=false",
                    "--ip-forward=false",
                    "--ip-masq=false",
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started_pid = proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.started_pid = None
                self._bridge_down()
                raise EngineUnavailable(f"dockerd exited {proc.returncode}: {self.log()[-2000:]}")
            if self.answers():
                return self
            time.sleep(0.5)
        self.stop()
        raise EngineUnavailable(f"dockerd did not answer within {timeout}s: {self.log()[-2000:]}")

    def _bridge_up(self) -> None:
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            return
        for cmd in (
            ["ip", "link", "add", "name", BRIDGE, "type", "bridge"],
            ["ip", "addr", "add", BRIDGE_CIDR, "dev", BRIDGE],
            ["ip", "link", "set", BRIDGE, "up"],
        ):
            done = subprocess.run(as_root(cmd), capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise EngineUnavailable(f"{' '.join(cmd)}: {done.stderr.strip()}")
            self.made_bridge = True

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.home / "dockerd.log").read_text(errors="replace")
        return ""

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the dockerd we started (by its PID), SIGKILL after ``timeout``."""
        pid, self.started_pid = self.started_pid, None
        if pid is None:
            return
        try:
            self._kill(pid, timeout)
        finally:
            self._bridge_down()
            self._unmount_netns()

    def _unmount_netns(self) -> None:
        """dockerd leaves its network namespaces bind-mounted under the exec root: unmount
        them, or the folder cannot be removed."""
        netns = self.home / "exec" / "netns"
        for entry in sorted(netns.glob("*")) if netns.is_dir() else []:
            subprocess.run(as_root(["umount", str(entry)]), capture_output=True, check=False)

    def _bridge_down(self) -> None:
        if self.made_bridge:
            subprocess.run(as_root(["ip", "link", "del", BRIDGE]), capture_output=True, check=False)
            self.made_bridge = False

    @staticmethod
    def _kill(pid: int, timeout: float) -> None:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
                time.sleep(0.2)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
