"""The whole hub as real pods on a real node: the locally built images in the node's containerd,
`helm install` of the chart with kind/e2e.sh's values (plus the node's Redis image), the
stand-in Entra + Key Vault as a pod, then what a platform engineer checks after an install:
the operator syncs, the gateway is Ready, a client pod reaches REST, the OpenAI API and MCP by
the Service's DNS name, a Key Vault rotation restarts the gateway and the next answer runs on
the new credential, an operator restart rolls nothing, a deleted gateway pod loses no committed
turn (sessions in the Redis pod), `helm upgrade`, `helm test` and `helm uninstall` complete.
Each stage prints its time.

The tests are stages of one cluster, in file order (each needs the one before). Under CI=true
nothing here skips: a missing prerequisite fails, naming it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.chart.conftest import CHART
from tests.chart_k8s.helm import Helm
from tests.containers.engine import Engine, EngineUnavailable
from tests.containers.tier import in_ci
from tests.k8s.controlplane import ControlPlane, MissingBinaries, find_binaries
from tests.node import azure
from tests.node.azure import HUB_NS
from tests.node.images import CLIENT, TAG, NodeImages
from tests.node.node import Node, NodeUnavailable, check_prerequisites, wait_until

RELEASE = "llm-mcp-hub"
CLAUDE_HASH = "llm-mcp-hub.io/claude-hash"  # the operator's roll trigger on the gateway
GATEWAY, OPERATOR, REDIS = f"{RELEASE}-gateway", f"{RELEASE}-operator", f"{RELEASE}-redis"
VALUES = (CHART / "ci" / "kind-values.yaml", CHART / "ci" / "node-values.yaml")
CLIENT_NS = "llm-mcp-hub-client"
BASE = f"http://{GATEWAY}.{HUB_NS}.svc:8000"  # the Service by its DNS name, from another namespace
RUN = uuid.uuid4().hex[:8]
# Fake credentials of this run; compared in the test, never printed.
CLAUDE_V1 = f"sk-ant-oat01-node-first-{RUN}"
CLAUDE_V2 = f"sk-ant-oat01-node-rotated-{RUN}"
GEMINI_V1 = json.dumps(
    {
        "access_token": f"ya29.node-{RUN}",
        "refresh_token": "1//node",
        "token_type": "Bearer",
        "expiry_date": 4102444800000,
    }
)


def fingerprint(token: str) -> str:
    """What the fake Claude CLI reports for a token (FAKE_CLI_TOKEN_FINGERPRINT=1)."""
    return "token=present:" + hashlib.sha256(token.encode()).hexdigest()[:8]


@dataclass
class Hub:
    node: Node
    helm: Helm
    config: pytest.Config
    state: dict[str, Any] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time one stage and print it to the run's output (not only on failure)."""
        started = time.monotonic()
        try:
            yield
        finally:
            line = f"[node tier] {name}: {time.monotonic() - started:.1f}s"
            capture = self.config.pluginmanager.getplugin("capturemanager")
            report = self.config.pluginmanager.getplugin("terminalreporter")
            if capture is None or report is None:
                print(line)
            else:
                with capture.global_and_fixture_disabled():
                    report.write_line(line)

    # -- cluster reads -----------------------------------------------------------------------

    def secret_value(self, name: str, key: str) -> str:
        data = self.node.get("-n", HUB_NS, "secret", name)["data"]
        return base64.b64decode(data[key]).decode()

    def provider_ready(self, name: str) -> bool:
        status = self.node.get("-n", HUB_NS, "llmprovider", name).get("status", {})
        return bool(status.get("phase") == "Ready")

    def synced_since(self, name: str, moment: datetime) -> bool:
        at = self.node.get("-n", HUB_NS, "llmprovider", name).get("status", {}).get("lastSyncTime")
        return bool(at) and datetime.fromisoformat(at.replace("Z", "+00:00")) >= moment

    def settle(self, provider: str) -> None:
        """Wait for a sync pass that began after now: no roll for an older value is on its way."""
        since = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        wait_until(
            f"a fresh sync of llmprovider/{provider}", partial(self.synced_since, provider, since)
        )

    def gateway_template(self) -> dict[str, str]:
        """The gateway's pod-template annotations (the operator's credential hashes)."""
        deployment = self.node.get("-n", HUB_NS, "deploy", GATEWAY)
        return dict(deployment["spec"]["template"]["metadata"].get("annotations", {}))

    def gateway_pods(self) -> set[str]:
        pods = self.node.get("-n", HUB_NS, "pods", "-l", f"app.kubernetes.io/instance={RELEASE}")[
            "items"
        ]
        return {
            p["metadata"]["name"]
            for p in pods
            if p["metadata"]["name"].startswith(GATEWAY)
            and "deletionTimestamp" not in p["metadata"]
        }

    def rollout(self, deployment: str) -> None:
        self.node.kubectl(
            "-n", HUB_NS, "rollout", "status", f"deploy/{deployment}", "--timeout=180s", timeout=200
        )

    def call(self, kind: str, prompt: str, *extra: str) -> dict[str, Any]:
        """tests/node/client.py, run inside the client pod."""
        script = (Path(__file__).parent / "client.py").read_text()
        for _ in range(15):
            done = self.node.kubectl(
                *("-n", CLIENT_NS, "exec", "-i", "client", "--", "python", "-", BASE, kind, prompt),
                *extra,
                stdin=script,
                check=False,
            )
            # Refused before any request was sent (a replaced pod's endpoint not yet in
            # kube-proxy's rules): safe to try again; anything else is the answer.
            if done.returncode == 0 or "Connection refused" not in done.stdout + done.stderr:
                break
            time.sleep(2)
        if done.returncode != 0:
            raise AssertionError(f"client {kind}: {done.stdout}{done.stderr}\n{self.logs()}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    def logs(self) -> str:
        """The gateway's and the operator's last lines, for a failure's message."""
        out = []
        for deployment in (GATEWAY, OPERATOR):
            done = self.node.kubectl(
                *("-n", HUB_NS, "logs", f"deploy/{deployment}", "--tail=30"), check=False
            )
            out.append(f"--- {deployment}:\n{done.stdout}{done.stderr}")
        return "\n".join(out)

    def helm_release(self, *extra: str) -> None:
        files = [arg for path in VALUES for arg in ("-f", str(path))]
        self.helm.must(
            *("upgrade", "--install", RELEASE, str(CHART), "-n", HUB_NS, *files),
            *("--set", "operator.replicaCount=1", *extra),
            timeout=180,
        )


@pytest.fixture(scope="module")
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    try:
        find_binaries()
        check_prerequisites()
        engine = Engine().start()
    except (MissingBinaries, NodeUnavailable, EngineUnavailable) as exc:
        if in_ci():  # CI always runs this tier: something missing is a failure, not a skip
            pytest.fail(f"the real-node tier cannot run: {exc}")
        pytest.skip(str(exc))
    plane = ControlPlane(tmp_path_factory.mktemp("node-k8s"))
    node = Node(plane)
    hub = Hub(node, Helm(plane, tmp_path_factory.mktemp("node-helm")), request.config)
    try:
        with hub.stage("control plane + node (containerd, kubelet, kube-proxy, DNS)"):
            plane.start()
            node.start()
        images = NodeImages(engine)
        with hub.stage("images built (cached layers)"):
            names = images.build()
        with hub.stage("images imported into the node's containerd"):
            images.import_into(node.socket, names)
        yield hub
    finally:
        with hub.stage("node and control plane stopped"):
            node.stop()
            plane.cleanup()
            engine.stop()


def test_install_syncs_the_providers_and_the_gateway_becomes_ready(hub: Hub) -> None:
    with hub.stage("stand-in Entra + Key Vault pod"):
        azure.deploy(
            hub.node,
            {"claude-oauth-token": CLAUDE_V1, "gemini-oauth-creds": GEMINI_V1},
            TAG,
        )
    with hub.stage("helm install (CRD first, then the LLMProviders)"):
        # As kind/e2e.sh: Helm maps every object before it creates any, so the LLMProviders
        # need the CRD from a release without them.
        hub.helm_release("--set-json", "providers=[]")
        hub.helm_release()
    with hub.stage("operator pod synced both LLMProviders"):
        wait_until(
            "claude-credentials to hold this run's Key Vault value",
            lambda: hub.secret_value("claude-credentials", "CLAUDE_CODE_OAUTH_TOKEN") == CLAUDE_V1,
        )
        wait_until(
            "gemini-credentials to hold this run's oauth_creds.json",
            lambda: (
                f"ya29.node-{RUN}" in hub.secret_value("gemini-credentials", "oauth_creds.json")
            ),
        )
        for provider in ("claude", "gemini"):
            wait_until(f"llmprovider/{provider} Ready", partial(hub.provider_ready, provider))
    with hub.stage("gateway and Redis pods Ready"):
        hub.rollout(OPERATOR)
        hub.rollout(REDIS)
        hub.rollout(GATEWAY)
    gateway = hub.node.get("-n", HUB_NS, "deploy", GATEWAY)
    assert gateway["status"]["readyReplicas"] == 1, gateway["status"]


def test_a_client_pod_reaches_rest_openai_and_mcp_by_the_service_dns_name(hub: Hub) -> None:
    with hub.stage("client pod Ready"):
        hub.node.kubectl("create", "namespace", CLIENT_NS)
        hub.node.apply(client_pod())
        hub.node.kubectl(
            "-n", CLIENT_NS, "wait", "pod/client", "--for=condition=Ready", "--timeout=120s"
        )
    with hub.stage("REST, OpenAI and MCP through the Service"):
        answer = hub.call("rest", f"node-rest-{RUN}")
        assert f"node-rest-{RUN}" in answer["text"]
        assert fingerprint(CLAUDE_V1) in answer["text"], "the CLI ran without this run's token"
        chat = hub.call("openai", f"node-openai-{RUN}")
        assert "claude-sonnet-4-5-20250929" in chat["models"]
        assert f"node-openai-{RUN}" in chat["text"]
        tool = hub.call("mcp", f"node-mcp-{RUN}")
        assert {"claude_chat", "gemini_chat"} <= set(tool["tools"])
        assert f"node-mcp-{RUN}" in tool["text"], tool


def test_a_key_vault_rotation_restarts_the_gateway_and_the_next_answer_uses_it(hub: Hub) -> None:
    with hub.stage("settle: one sync pass after the install's roll"):
        hub.settle("claude")  # else the install's own roll could pass for the rotation's
    before = hub.gateway_pods()
    template = hub.gateway_template()
    generation = hub.node.get("-n", HUB_NS, "deploy", GATEWAY)["metadata"]["generation"]
    with hub.stage("rotation: Key Vault PUT -> Secret -> gateway pods restarted"):
        azure.put_claude_version(hub.node, CLAUDE_V2)
        wait_until(
            "claude-credentials to hold the rotated value",
            lambda: hub.secret_value("claude-credentials", "CLAUDE_CODE_OAUTH_TOKEN") == CLAUDE_V2,
        )
        wait_until(
            f"the gateway's pod-template annotation {CLAUDE_HASH} to change",
            lambda: hub.gateway_template().get(CLAUDE_HASH) != template.get(CLAUDE_HASH),
        )
        hub.rollout(GATEWAY)
    rolled = hub.node.get("-n", HUB_NS, "deploy", GATEWAY)["metadata"]["generation"]
    assert rolled == generation + 1, "one rotation rolls the gateway once"
    after = hub.gateway_pods()
    assert after, "no gateway pod after the rotation"
    assert not after & before, f"the gateway pods were not replaced: {before} -> {after}"
    answer = hub.call("rest", f"node-rotated-{RUN}")
    assert fingerprint(CLAUDE_V2) in answer["text"], "the answer did not use the rotated token"


def test_an_operator_restart_rolls_nothing(hub: Hub) -> None:
    before = hub.node.get("-n", HUB_NS, "deploy", GATEWAY)
    with hub.stage("operator pod restarted, both LLMProviders synced again"):
        hub.node.kubectl("-n", HUB_NS, "rollout", "restart", f"deploy/{OPERATOR}")
        hub.rollout(OPERATOR)
        for provider in ("claude", "gemini"):
            hub.settle(provider)
    after = hub.node.get("-n", HUB_NS, "deploy", GATEWAY)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"] == before["spec"]["template"]
    assert hub.secret_value("claude-credentials", "CLAUDE_CODE_OAUTH_TOKEN") == CLAUDE_V2


def test_deleting_a_gateway_pod_mid_session_loses_no_committed_turn(hub: Hub) -> None:
    first = hub.call("rest", f"node-turn-one-{RUN}")
    session_id = first["session_id"]
    with hub.stage("gateway pod deleted mid-session, replacement Ready"):
        (pod,) = hub.gateway_pods()
        hub.node.kubectl("-n", HUB_NS, "delete", "pod", pod, "--wait=true", timeout=120)
        hub.rollout(GATEWAY)
        assert pod not in hub.gateway_pods()
    second = hub.call("rest", f"node-turn-two-{RUN}", session_id)
    assert second["session_id"] == session_id
    # The fake CLI echoes the conversation it holds: the new pod resumed turn one from Redis.
    assert f"node-turn-one-{RUN}" in second["text"], second["text"]
    turns = hub.call("session", session_id)["turns"]
    users = [t["text"] for t in turns if t["role"] == "user"]
    assert users == [f"node-turn-one-{RUN}", f"node-turn-two-{RUN}"], users


def test_helm_upgrade_test_and_uninstall_complete(hub: Hub) -> None:
    with hub.stage("helm upgrade to two gateway replicas"):
        hub.helm_release("--set", "gateway.replicaCount=2")
        hub.rollout(GATEWAY)
        assert len(hub.gateway_pods()) == 2
        assert f"node-upgraded-{RUN}" in hub.call("rest", f"node-upgraded-{RUN}")["text"]
    with hub.stage("helm test (the chart's readiness check pod)"):
        out = hub.helm.must("test", RELEASE, "-n", HUB_NS, "--timeout", "120s", timeout=150)
        assert "Phase:          Succeeded" in out, out
    with hub.stage("helm uninstall --wait, nothing left"):
        hub.helm.must(
            "uninstall", RELEASE, "-n", HUB_NS, "--wait", "--timeout", "120s", timeout=150
        )

        def nothing_left() -> bool:
            left = [
                hub.node.get("-n", HUB_NS, "llmproviders")["items"],
                hub.node.get(
                    "-n",
                    HUB_NS,
                    "secrets",
                    "-l",
                    "app.kubernetes.io/managed-by=llm-mcp-hub-operator",
                )["items"],
                hub.node.get("-n", HUB_NS, "pods", "-l", f"app.kubernetes.io/instance={RELEASE}")[
                    "items"
                ],
            ]
            return not any(left)

        wait_until("the release's LLMProviders, Secrets and pods to be gone", nothing_left)


def client_pod() -> dict[str, Any]:
    """A Pod Security "restricted" pod with python and the official clients, idling for exec."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": CLIENT_NS},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {
                "runAsUser": 10001,
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "client",
                    "image": CLIENT,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", "import time; time.sleep(86400)"],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
