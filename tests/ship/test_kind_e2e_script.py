"""kind/e2e.sh run with recording stand-ins for kind, docker, kubectl, helm and curl on PATH.

The real script, real bash, real openssl and python3; only the tools that would reach Docker, a
cluster or the port-forward are stand-ins (tests/ship/standin.py). What is checked is what the
script does to the user's machine: which cluster it deletes, which kubeconfig and context it
uses, and that its own checks (re-sync after re-seeding, restart rolls nothing, uninstall leaves
nothing) really fail when the cluster misbehaves.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ship.dockerfiles import REPO

SCRIPT = REPO / "kind" / "e2e.sh"
STANDIN = Path(__file__).with_name("standin.py")
CLUSTER = "llm-mcp-hub"
USER_KUBECONFIG = """apiVersion: v1
kind: Config
current-context: prod-aks
clusters: [{name: prod-aks, cluster: {server: 'https://prod.example:443'}}]
contexts: [{name: prod-aks, context: {cluster: prod-aks, user: admin}}]
users: [{name: admin, user: {}}]
"""


@dataclass
class Run:
    done: subprocess.CompletedProcess[str]
    calls: list[dict[str, Any]]
    state: dict[str, Any]
    out: Path
    user_kubeconfig: Path
    home: Path

    def of(self, tool: str) -> list[list[str]]:
        return [c["argv"] for c in self.calls if c["tool"] == tool]

    @property
    def own_kubeconfig(self) -> str:
        return str(self.out / "kubeconfig")


def run_script(tmp_path: Path, state: dict[str, Any] | None = None, **env: str) -> Run:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("kind", "docker", "kubectl", "helm", "curl"):
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "{STANDIN}" {tool} "$@"\n')
        wrapper.chmod(0o755)
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True, exist_ok=True)
    user_kubeconfig = tmp_path / "user-kubeconfig"
    user_kubeconfig.write_text(USER_KUBECONFIG)
    (home / ".kube" / "config").write_text(USER_KUBECONFIG)
    out = tmp_path / "out"
    state_file = tmp_path / "state.json"
    if state is not None:
        state_file.write_text(json.dumps(state))
    log = tmp_path / "calls.jsonl"
    log.write_text("")
    full_env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(home),
        "KUBECONFIG": str(user_kubeconfig),  # the user's: the script must leave it alone
        "LANG": "C.UTF-8",
        "E2E_OUT": str(out),
        "HELM": "helm",
        "TIMEOUT": "10",
        "POLL": "0.05",
        "STANDIN_LOG": str(log),
        "STANDIN_STATE": str(state_file),
        **env,
    }
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    final = json.loads(state_file.read_text()) if state_file.exists() else {}
    return Run(done, calls, final, out, user_kubeconfig, home)


def assert_left_the_user_alone(run: Run) -> None:
    assert run.user_kubeconfig.read_text() == USER_KUBECONFIG
    assert (run.home / ".kube" / "config").read_text() == USER_KUBECONFIG
    assert list((run.home / ".kube").iterdir()) == [run.home / ".kube" / "config"]
    for call in run.calls:
        if call["tool"] in ("kubectl", "helm", "kind"):
            assert call["kubeconfig_env"] == run.own_kubeconfig, call
    for argv in run.of("kubectl"):
        assert "config" not in argv, f"kubectl {argv} touches a kubeconfig's contexts"
        assert argv[:4] == ["--kubeconfig", run.own_kubeconfig, "--context", f"kind-{CLUSTER}"]
    for argv in run.of("helm"):
        i = argv.index("--kubeconfig")
        assert argv[i + 1] == run.own_kubeconfig
        assert argv[argv.index("--kube-context") + 1] == f"kind-{CLUSTER}"
    for argv in run.of("kind"):
        if argv[:2] in (["create", "cluster"], ["delete", "cluster"]):
            assert argv[argv.index("--kubeconfig") + 1] == run.own_kubeconfig


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One passing run on a machine without the cluster (shared: each run takes seconds)."""
    run = run_script(tmp_path_factory.mktemp("fresh"))
    assert run.done.returncode == 0, run.done.stderr[-3000:]
    return run


def test_fresh_run_creates_checks_and_deletes_its_own_cluster(fresh: Run) -> None:
    run = fresh
    assert run.done.stdout.rstrip().endswith("PASS: llm-mcp-hub end-to-end on kind")
    creates = [a for a in run.of("kind") if a[:2] == ["create", "cluster"]]
    deletes = [a for a in run.of("kind") if a[:2] == ["delete", "cluster"]]
    assert len(creates) == 1
    assert creates[0][creates[0].index("--name") + 1] == CLUSTER
    assert len(deletes) == 1, "a cluster this run created is deleted at exit"
    assert run.state["clusters"] == []
    assert_left_the_user_alone(run)
    # The images it built are the ones it loads into kind.
    built = {a[a.index("-t") + 1] for a in run.of("docker")}
    loaded = {a[-1] for a in run.of("kind") if a[:2] == ["load", "docker-image"]}
    assert loaded <= built


def test_keep_cluster_keeps_a_cluster_it_created(tmp_path: Path) -> None:
    run = run_script(tmp_path, KEEP_CLUSTER="1")
    assert run.done.returncode == 0, run.done.stderr[-3000:]
    assert run.state["clusters"] == [CLUSTER]
    assert not [a for a in run.of("kind") if a[0] == "delete"]


def test_existing_cluster_is_reused_and_never_deleted(tmp_path: Path) -> None:
    run = run_script(tmp_path, {"clusters": ["other", CLUSTER]})
    assert run.done.returncode == 0, run.done.stderr[-3000:]
    assert not [a for a in run.of("kind") if a[0] in ("create", "delete")]
    assert ["get", "kubeconfig", "--name", CLUSTER] in run.of("kind")
    assert run.state["clusters"] == ["other", CLUSTER]
    assert_left_the_user_alone(run)


@pytest.mark.parametrize("existing", [False, True])
def test_a_failing_run_deletes_only_a_cluster_it_created(tmp_path: Path, existing: bool) -> None:
    run = run_script(tmp_path, {"clusters": [CLUSTER]} if existing else None, STANDIN_FAIL="helm")
    assert run.done.returncode != 0
    deletes = [a for a in run.of("kind") if a[:2] == ["delete", "cluster"]]
    assert (deletes == []) is existing
    assert run.state["clusters"] == ([CLUSTER] if existing else [])
    assert_left_the_user_alone(run)


def test_rerun_waits_for_the_resync_and_restarts_the_operator_for_the_new_ca(
    tmp_path: Path,
) -> None:
    """The last run's release, Secrets and CA are there; the operator re-syncs 5 reads late."""
    previous = {
        "clusters": [CLUSTER],
        "release": True,
        "configmaps": {"llm-mcp-hub/fake-azure-ca": {"ca.crt": "the last run's CA"}},
        "secrets": {
            "claude-credentials": {"CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-last-run"},
            "gemini-credentials": {"oauth_creds.json": '{"access_token": "ya29.last-run"}'},
        },
        "kv_claude": "sk-ant-oat01-last-run",
        "generation": 7,
        "hash": "sha256:lastrun",
    }
    run = run_script(tmp_path, previous, STANDIN_LAG="5")
    assert run.done.returncode == 0, run.done.stderr[-3000:]
    kubectl = run.of("kubectl")
    restarts = [
        i
        for i, a in enumerate(kubectl)
        if a[4:7] == ["-n", "llm-mcp-hub", "rollout"] and "restart" in a
    ]
    first_read = next(i for i, a in enumerate(kubectl) if "claude-credentials" in a)
    assert restarts, "the operator was not restarted for the new CA"
    assert restarts[0] < first_read, "restart before comparing, so the new CA is trusted"
    # The value the script compared is this run's, so it read the Secret until it re-synced.
    first_put = next(i for i, a in enumerate(kubectl) if "exec" in a)
    reads = [a for a in kubectl[:first_put] if "claude-credentials" in a]
    assert len(reads) >= 6, "5 stale answers, then this run's value"


def test_fresh_install_needs_no_operator_restart_before_the_first_sync(fresh: Run) -> None:
    kubectl = fresh.of("kubectl")
    first_read = next(i for i, a in enumerate(kubectl) if "claude-credentials" in a)
    assert not [a for a in kubectl[:first_read] if "restart" in a]


def test_an_operator_restart_that_rolls_the_gateway_fails_the_run(tmp_path: Path) -> None:
    run = run_script(tmp_path, STANDIN_ROLL_ON_RESTART="1")
    assert run.done.returncode != 0
    assert "FAIL: an operator restart rolled the gateway" in run.done.stderr
    assert run.state["clusters"] == []


def test_objects_left_after_helm_uninstall_fail_the_run(tmp_path: Path) -> None:
    run = run_script(tmp_path, STANDIN_STUCK="1", TIMEOUT="4")
    assert run.done.returncode != 0
    assert "timed out waiting for: the release's LLMProviders" in run.done.stderr
    uninstall = [a for a in run.of("helm") if "uninstall" in a]
    assert len(uninstall) == 1


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        # a gateway keeping sessions in its pod's memory
        (
            "STANDIN_LOSE_SESSIONS",
            "the session lost its first turn when the gateway pod was deleted",
        ),
        # pods a rotation never restarted answer on the old token
        ("STANDIN_STALE_CLI", "the gateway's CLI does not run on the rotated claude-oauth-token"),
    ],
)
def test_the_session_and_rotation_answers_are_checked(
    tmp_path: Path, fault: str, message: str
) -> None:
    run = run_script(tmp_path, **{fault: "1"})
    assert run.done.returncode != 0
    assert f"FAIL: {message}" in run.done.stderr
    assert run.state["clusters"] == []


def test_two_operator_replicas_are_installed_and_checked(fresh: Run) -> None:
    run = fresh
    upgrades = [a for a in run.of("helm") if "upgrade" in a]
    sets = [a[a.index("--set") + 1] for a in upgrades]
    assert sets == ["operator.replicaCount=1", "operator.replicaCount=1", "operator.replicaCount=2"]
    # A fresh cluster has no LLMProvider CRD: the first release creates it, without providers.
    assert [a[a.index("--set-json") + 1] for a in upgrades if "--set-json" in a] == ["providers=[]"]
    assert run.state["replicas"] == 2
    # Three rotations' worth of rolls: none from the restart, one per Key Vault change after V1.
    assert run.state["generation"] == 3


def test_the_throwaway_ca_is_a_ca_and_the_server_certificate_verifies_strictly(
    fresh: Run,
) -> None:
    run = fresh
    text = subprocess.run(
        ["openssl", "x509", "-in", str(run.out / "ca.crt"), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.search(r"Basic Constraints: critical\s+CA:TRUE", text)
    assert re.search(r"Key Usage: critical\s+Certificate Sign, CRL Sign", text)
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            str(run.out / "ca.crt"),
            str(run.out / "tls.crt"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


# ------------------------------------------------------------------------------- bash 3.2

BASH4_ONLY = {
    r"\bdeclare -[A-Za-z]*A": "associative arrays",
    r"\b(mapfile|readarray)\b": "mapfile/readarray",
    r"\$\{\w+(,,|\^\^)\}": "case modification",
    r"\|&": "|& pipes",
    r"&>>": "&>> redirection",
    r"\bcoproc\b": "coproc",
    r"\b(declare|local) -n\b": "namerefs",
    r"\$\{\w+@[QEPAa]\}": "${var@op}",
    r"\bwait -n\b": "wait -n",
    r"\$EPOCH(SECONDS|REALTIME)": "EPOCHSECONDS",
}


def test_e2e_uses_nothing_newer_than_bash_3_2() -> None:
    text = SCRIPT.read_text()
    found = {what for pattern, what in BASH4_ONLY.items() if re.search(pattern, text)}
    assert found == set()


def maybe_empty_arrays(text: str) -> set[str]:
    """Arrays expanded as "${a[@]}" that are assigned empty, or never assigned at all."""
    found = set()
    for name in set(re.findall(r'"\$\{(\w+)\[@\]\}"', text)):
        assigned = re.findall(rf"^\s*(?:local\s+)?{name}=\((.*)\)", text, re.M)
        read_into = re.search(rf"read -r -a {name}\b", text)
        if not (assigned or read_into) or not all(value.strip() for value in assigned):
            found.add(name)
    return found


def test_no_array_that_can_be_empty_is_expanded_under_set_u() -> None:
    """bash < 4.4 calls "${a[@]}" of an empty array an unbound variable under set -u."""
    text = SCRIPT.read_text()
    assert "set -euo pipefail" in text
    assert maybe_empty_arrays(text) == set()


def test_the_empty_array_check_really_catches_one() -> None:
    """The pattern kind/e2e.sh used for its optional MCP session header."""
    old = (
        "set -u\nsession_header=()\n"
        'if [ -n "$session" ]; then session_header=(-H "Mcp-Session-Id: $session"); fi\n'
        'curl "${session_header[@]}" "$BASE"\nprintf "%s" "${never[@]}"\n'
    )
    assert maybe_empty_arrays(old) == {"session_header", "never"}
