"""The stand-in Entra + Key Vault as a pod, exactly as kind/e2e.sh deploys it: the script's own
manifest heredoc renders the Deployment and Service, and its rotation heredoc PUTs a new secret
version from inside the fake's pod, so the node tier and the kind job cannot drift apart.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import trustme

from tests.node.node import Node
from tests.ship.test_kind_rotation_step import rotation_heredoc

ROOT = Path(__file__).resolve().parents[2]
AZ_NS, HUB_NS = "llm-mcp-hub-system", "llm-mcp-hub"
TENANT = "66666666-7777-8888-9999-000000000000"
FAKE_HOST = f"fake-azure.{AZ_NS}.svc"


def manifest_heredoc() -> str:
    """The Python kind/e2e.sh runs to render fake-azure's Deployment + Service."""
    text = (ROOT / "kind" / "e2e.sh").read_text()
    match = re.search(r'python3 - "\$AZ_NS" .*?<<\'PY\'.*?\n(.*?)\nPY\n', text, re.S)
    assert match, "kind/e2e.sh's fake-azure manifest heredoc not found"
    return match.group(1)


def deploy(node: Node, seeds: dict[str, str], tag: str) -> None:
    """Namespaces (Pod Security restricted), TLS, the CA for the operator, the stand-in."""
    ca = trustme.CA(organization_name="llm-mcp-hub node CA")
    cert = ca.issue_cert(FAKE_HOST, f"{FAKE_HOST}.cluster.local", f"fake-azure.{AZ_NS}")
    for ns in (AZ_NS, HUB_NS):
        node.kubectl("create", "namespace", ns)
        node.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
        node.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "fake-azure-ca", "namespace": ns},
                "data": {"ca.crt": ca.cert_pem.bytes().decode()},
            }
        )
    with cert.cert_chain_pems[0].tempfile() as crt, cert.private_key_pem.tempfile() as key:
        node.kubectl(
            "-n", AZ_NS, "create", "secret", "tls", "fake-azure-tls", "--cert", crt, "--key", key
        )
    args = [AZ_NS, tag, TENANT, "node-ca", *(f"{k}={v}" for k, v in seeds.items())]
    rendered = subprocess.run(
        [sys.executable, "-", *args],
        input=manifest_heredoc(),
        capture_output=True,
        text=True,
        check=True,
    )
    node.kubectl("apply", "-f", "-", stdin=rendered.stdout)
    node.kubectl("-n", AZ_NS, "rollout", "status", "deploy/fake-azure", "--timeout=120s")


def put_claude_version(node: Node, value: str) -> None:
    """A new version of claude-oauth-token, PUT from inside the fake's pod (kind/e2e.sh's step)."""
    node.kubectl(
        *("-n", AZ_NS, "exec", "-i", "deploy/fake-azure", "--"),
        *("python", "-", TENANT, value),
        stdin=rotation_heredoc(),
    )
