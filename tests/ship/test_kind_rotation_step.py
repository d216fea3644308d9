"""kind/e2e.sh's Key Vault rotation step, run for real against the stand-in Entra + Key Vault.

The step is a Python heredoc the script runs inside the fake-azure pod; here the same text runs
on this machine against the same stand-in started as kind starts it (tests/fakes/fake_azure.py
as a process, TLS from a throwaway CA), with only its address and CA path moved. The stand-in
verifies that a client assertion is a JWT, so a literal string is refused with 401.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.k8s.controlplane import free_port
from tests.ship.dockerfiles import REPO

TENANT = "66666666-7777-8888-9999-000000000000"


def rotation_heredoc() -> str:
    text = (REPO / "kind" / "e2e.sh").read_text()
    match = re.search(r"put_claude_version\(\) \{.*?<<'PY'\n(.*?)\nPY\n", text, re.S)
    assert match, "put_claude_version's heredoc not found"
    return match.group(1)


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "tls.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tests/fakes/fake_azure.py"),
            "--port",
            str(port),
            "--cert-file",
            str(tmp_path / "tls.pem"),
            "--key-file",
            str(tmp_path / "tls.pem"),
            "--tenant",
            TENANT,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "serving on" in proc.stdout.readline()
        yield port, tmp_path / "ca.crt"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_step(
    stand_in: tuple[int, Path], value: str, *, assertion: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The heredoc, pointed at the local stand-in (optionally with another client assertion)."""
    port, ca = stand_in
    script = rotation_heredoc().replace("https://localhost:8443", f"https://localhost:{port}")
    script = script.replace("/ca/ca.crt", str(ca))
    if assertion is not None:
        script = script.replace(
            '"client_assertion": assertion', f'"client_assertion": {assertion!r}'
        )
    return subprocess.run(
        [sys.executable, "-", TENANT, value],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_rotation_step_gets_a_vault_token_and_writes_a_new_version(
    stand_in: tuple[int, Path],
) -> None:
    done = run_step(stand_in, "sk-ant-oat01-rotated-in-test")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("new version: ")


def test_a_literal_client_assertion_is_refused_by_the_stand_in(
    stand_in: tuple[int, Path],
) -> None:
    """The stand-in is as strict as Entra: the old literal assertion fails the step."""
    done = run_step(stand_in, "v", assertion="kind-e2e")
    assert done.returncode != 0
    assert "401" in done.stderr
