"""A real Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager.

envtest-style: ``KUBEBUILDER_ASSETS`` names a directory with ``kube-apiserver`` and
``kube-controller-manager`` (``scripts/bootstrap.sh`` unpacks them into ``.cache/k8s/bin``);
etcd comes from the same directory or ``PATH`` (Debian's ``etcd-server``). Everything runs on
free loopback ports with its data in a temp dir, and is stopped by PID.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ASSETS = ROOT / ".cache" / "k8s" / "bin"
SERVICE_CIDR, SERVICE_IP = "10.0.0.0/24", "10.0.0.1"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
HOW_TO_GET = (
    "kube-apiserver/kube-controller-manager v1.31 not found: run scripts/bootstrap.sh "
    "(unpacks them from ../shared/k8s), or get them from the upstream release "
    "(or `setup-envtest use 1.31.x`) and set KUBEBUILDER_ASSETS; etcd: apt-get install etcd-server"
)


class MissingBinaries(RuntimeError):
    """The control-plane binaries are not installed on this machine."""


def find_binaries() -> dict[str, Path]:
    """Locate the three binaries; raise MissingBinaries naming how to get them."""
    assets = Path(os.environ.get("KUBEBUILDER_ASSETS") or DEFAULT_ASSETS)
    found: dict[str, Path] = {}
    for name in ("kube-apiserver", "kube-controller-manager"):
        path = assets / name
        if not os.access(path, os.X_OK):
            raise MissingBinaries(HOW_TO_GET)
        found[name] = path
    etcd = assets / "etcd" if os.access(assets / "etcd", os.X_OK) else shutil.which("etcd")
    if etcd is None:
        raise MissingBinaries(HOW_TO_GET)
    found["etcd"] = Path(etcd)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class ControlPlane:
    """One running control plane; ``kubeconfig`` is an admin (system:masters) kubeconfig."""

    workdir: Path
    binaries: dict[str, Path] = field(default_factory=find_binaries)
    apiserver_port: int = 0
    etcd_port: int = 0
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    def start(self, timeout: float = 90.0) -> ControlPlane:
        pki = self.workdir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="llm-mcp-hub test cluster")
        ca.cert_pem.write_to_path(str(pki / "ca.crt"))
        ca.private_key_pem.write_to_path(str(pki / "ca.key"))
        serving = ca.issue_cert(
            "127.0.0.1",
            SERVICE_IP,
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            common_name="kube-apiserver",
        )
        serving.cert_chain_pems[0].write_to_path(str(pki / "apiserver.crt"))
        serving.private_key_pem.write_to_path(str(pki / "apiserver.key"))
        admin = ca.issue_cert(
            "admin.local", common_name="kubernetes-admin", organization_name="system:masters"
        )
        kcm = ca.issue_cert("kcm.local", common_name="system:kube-controller-manager")
        # The API server's client certificate towards kubelets (logs, exec, port-forward), for
        # the real-node tier (tests/node); unused while no node joins.
        kubelet_client = ca.issue_cert(
            "apiserver.local",
            common_name="kube-apiserver-kubelet-client",
            organization_name="system:masters",
        )
        kubelet_client.cert_chain_pems[0].write_to_path(str(pki / "apiserver-kubelet-client.crt"))
        kubelet_client.private_key_pem.write_to_path(str(pki / "apiserver-kubelet-client.key"))
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (pki / "sa.key").write_bytes(
            sa_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        (pki / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.apiserver_port = free_port()
        ca_pem = ca.cert_pem.bytes()
        self._write_kubeconfig(self.kubeconfig, ca_pem, admin)
        self._write_kubeconfig(self.workdir / "kcm.kubeconfig", ca_pem, kcm)
        self._admin_pems = (
            admin.cert_chain_pems[0].bytes(),
            admin.private_key_pem.bytes(),
        )
        deadline = time.monotonic() + timeout
        etcd_port = self.etcd_port = self._start_etcd()
        self._wait(f"http://127.0.0.1:{etcd_port}/health", deadline, "etcd")
        self._start_apiserver(pki, etcd_port)
        self._wait(f"{self.url}/readyz", deadline, "kube-apiserver", admin_tls=True)
        kcm_port = self._start_controller_manager(pki)
        self._wait(f"https://127.0.0.1:{kcm_port}/healthz", deadline, "kube-controller-manager")
        return self

    def stop(self) -> None:
        """Stop what we started, by PID: controllers first, etcd last."""
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- internals ---------------------------------------------------------------------------

    def _write_kubeconfig(self, path: Path, ca_pem: bytes, cert: trustme.LeafCert) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": self.url, "certificate-authority-data": _b64(ca_pem)},
                }
            ],
            "users": [
                {
                    "name": "user",
                    "user": {
                        "client-certificate-data": _b64(cert.cert_chain_pems[0].bytes()),
                        "client-key-data": _b64(cert.private_key_pem.bytes()),
                    },
                }
            ],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "user"}}],
            "current-context": "test",
        }
        path.write_text(json.dumps(config))
        path.chmod(0o600)

    def _spawn(self, name: str, args: list[str]) -> None:
        logfile = (self.workdir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [str(self.binaries[name]), *args],
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        logfile.close()

    def _start_etcd(self) -> int:
        client_port, peer_port = free_port(), free_port()
        # etcd fsyncs every write: on tmpfs that costs nothing, which keeps the suite fast.
        shm = Path("/dev/shm")
        base = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else self.workdir
        self._etcd_data = base
        self._spawn(
            "etcd",
            [
                "--name=test",
                f"--data-dir={base / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{client_port}",
                f"--advertise-client-urls=http://127.0.0.1:{client_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=test=http://127.0.0.1:{peer_port}",
                "--initial-cluster-state=new",
                "--logger=zap",
                "--log-level=warn",
            ],
        )
        return client_port

    def compact_etcd(self) -> int:
        """Compact etcd to its current revision (etcdctl from Debian's etcd-client): a watch
        resumed from any earlier resourceVersion then gets 410 Gone. Returns the revision."""
        endpoint = f"--endpoints=http://127.0.0.1:{self.etcd_port}"
        status = subprocess.run(
            ["etcdctl", endpoint, "endpoint", "status", "--write-out=json"],
            check=True,
            capture_output=True,
            env={**os.environ, "ETCDCTL_API": "3"},
        )
        revision = int(json.loads(status.stdout)[0]["Status"]["header"]["revision"])
        subprocess.run(
            ["etcdctl", endpoint, "compact", str(revision)],
            check=True,
            capture_output=True,
            env={**os.environ, "ETCDCTL_API": "3"},
        )
        return revision

    def kubeconfig_via(self, port: int) -> Path:
        """The admin kubeconfig, but reaching the API server through 127.0.0.1:``port`` (a
        TCP proxy the test controls; the serving certificate names 127.0.0.1, not a port)."""
        config = json.loads(self.kubeconfig.read_text())
        config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
        path = self.workdir / f"admin-via-{port}.kubeconfig"
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path

    def restart_apiserver(self, timeout: float = 60.0) -> None:
        """Kill the API server (a crash: a graceful stop waits out open watches for a minute) and
        start it again on the same port: every client's watch breaks."""
        proc = self.procs.pop("kube-apiserver")
        proc.kill()
        proc.wait(20)
        self._spawn("kube-apiserver", self._apiserver_args)
        self._wait(
            f"{self.url}/readyz", time.monotonic() + timeout, "kube-apiserver", admin_tls=True
        )

    def _start_apiserver(self, pki: Path, etcd_port: int) -> None:
        self._apiserver_args = [
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.apiserver_port}",
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--authorization-mode=Node,RBAC",
            "--anonymous-auth=false",
            "--allow-privileged=true",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--endpoint-reconciler-type=none",  # 127.0.0.1 cannot be an Endpoints address
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            "--profiling=false",
            "--v=1",
        ]
        self._spawn("kube-apiserver", self._apiserver_args)

    def _start_controller_manager(self, pki: Path) -> int:
        port = free_port()
        kubeconfig = self.workdir / "kcm.kubeconfig"
        self._spawn(
            "kube-controller-manager",
            [
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                "--cluster-name=test",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--controllers=*",
                # Garbage collection and namespace deletion promptly, for the deletion tests.
                "--concurrent-gc-syncs=5",
                f"--flex-volume-plugin-dir={self.workdir / 'flexvolume'}",
                "--profiling=false",
                "--v=1",
            ],
        )
        return port

    def _wait(self, url: str, deadline: float, what: str, *, admin_tls: bool = False) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if admin_tls:
            certfile = self.workdir / "pki" / "admin.pem"
            certfile.write_bytes(self._admin_pems[0] + self._admin_pems[1])
            context.load_cert_chain(str(certfile))
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the controller-manager's self-signed cert
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited ({proc.returncode}):\n{self.log(name)[-3000:]}"
                    )
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise RuntimeError(f"{what} not ready in time ({last}):\n{self.log(what)[-3000:]}")

    def cleanup(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(getattr(self, "_etcd_data", ""), ignore_errors=True)
