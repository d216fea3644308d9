"""Pod specs: Pod Security "restricted", probes, the gemini mount, roll strategy, env contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmhub_operator.resync import interval_from_env
from llmhub_operator.settings import OperatorSettings
from tests.chart.conftest import (
    CHART,
    CI_VALUES,
    Manifest,
    ci_file,
    container,
    env_of,
    find,
    one,
    render,
    run_helm,
)

VALUE_SETS: list[list[Path]] = [[], *([p] for p in CI_VALUES)]
IDS = ["default", *(p.name.removesuffix("-values.yaml") for p in CI_VALUES)]


def _pod_specs(docs: list[Manifest]) -> list[tuple[str, Manifest]]:
    pods = [
        (d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in find(docs, "Deployment")
    ]
    pods += [(d["metadata"]["name"], d["spec"]) for d in find(docs, "Pod")]
    return pods


@pytest.mark.parametrize("files", VALUE_SETS, ids=IDS)
def test_every_pod_meets_pod_security_restricted(files: list[Path]) -> None:
    pods = _pod_specs(render(files))
    assert len(pods) >= 3
    for name, spec in pods:
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True, name
        assert psc["runAsUser"] > 0, name
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in sc["capabilities"], name
            assert c["resources"]["requests"], name
            assert c["resources"]["limits"]["memory"], name
        assert not spec.get("hostNetwork"), name
        assert not spec.get("hostPID"), name


@pytest.mark.parametrize("files", VALUE_SETS, ids=IDS)
def test_gemini_secret_is_mounted_read_only_as_a_directory_never_with_subpath(
    files: list[Path],
) -> None:
    gateway = one(render(files), "Deployment", "-gateway")
    c = container(gateway)
    for mount in c["volumeMounts"]:
        assert "subPath" not in mount, mount
        assert "subPathExpr" not in mount, mount
    gemini = next(m for m in c["volumeMounts"] if m["name"] == "gemini-auth")
    assert gemini == {"name": "gemini-auth", "mountPath": "/mnt/auth/gemini", "readOnly": True}
    volume = next(
        v for v in gateway["spec"]["template"]["spec"]["volumes"] if v["name"] == "gemini-auth"
    )
    assert volume["secret"]["optional"] is True
    assert env_of(c)["GEMINI_AUTH_PATH"]["value"] == "/mnt/auth/gemini/oauth_creds.json"


def test_gateway_has_writable_empty_dirs_for_home_gemini_home_and_tmp(
    default_docs: list[Manifest],
) -> None:
    gateway = one(default_docs, "Deployment", "-gateway")
    spec = gateway["spec"]["template"]["spec"]
    empty = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    mounts = {m["mountPath"]: m for m in container(gateway)["volumeMounts"]}
    for path in ("/home/llmhub", "/home/llmhub/gemini", "/tmp"):
        assert mounts[path]["name"] in empty
        assert not mounts[path].get("readOnly")
    env = env_of(container(gateway))
    assert env["HOME"]["value"] == "/home/llmhub"
    assert env["GEMINI_CLI_HOME"]["value"] == "/home/llmhub/gemini"
    assert env["SCRATCH_DIR"]["value"].startswith("/tmp/")


def test_gateway_rolls_without_ever_dropping_a_pod(default_docs: list[Manifest]) -> None:
    strategy = one(default_docs, "Deployment", "-gateway")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert strategy["rollingUpdate"]["maxSurge"] >= 1


def test_gateway_probes_hit_health_live_and_ready_on_port_8000(
    default_docs: list[Manifest],
) -> None:
    c = container(one(default_docs, "Deployment", "-gateway"))
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8000, "admin": 9090}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert "command" not in c, "the image's tini ENTRYPOINT must stay PID 1"
    assert c["args"] == [
        *("llmhub-gateway", "--host", "0.0.0.0", "--port", "8000"),
        *("--admin-port", "9090"),
    ]


def test_gateway_service_targets_the_http_port_only(default_docs: list[Manifest]) -> None:
    """The callers' Service never carries the admin port (/metrics, /health/tokens)."""
    svc = one(default_docs, "Service", "-gateway")
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]
    selector = svc["spec"]["selector"]
    labels = one(default_docs, "Deployment", "-gateway")["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


def test_operator_liveness_probe_is_kopf_healthz_on_the_health_port(
    default_docs: list[Manifest],
) -> None:
    c = container(one(default_docs, "Deployment", "-operator"))
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 9090, "health": 8080}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert "command" not in c, "the image's tini ENTRYPOINT must stay PID 1"
    assert c["args"] == ["llmhub-operator"]
    env = env_of(c)
    assert env["METRICS_PORT"]["value"] == "9090"
    assert env["HEALTH_PORT"]["value"] == "8080"
    assert env["WATCH_NAMESPACES"]["value"] == "hub"
    assert env["LEADER_ELECTION"]["value"] == "true"
    assert env["LEASE_NAME"]["value"] == "hub-llm-mcp-hub-operator"
    assert env["LEASE_DURATION_SECONDS"]["value"] == "15"
    assert env["LEASE_RENEW_DEADLINE_SECONDS"]["value"] == "10"
    assert env["LEASE_RETRY_PERIOD_SECONDS"]["value"] == "2"
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["LLMHUB_AZURE_VERIFY_CHALLENGE_RESOURCE"]["value"] == "true"
    assert env["KUBE_REQUEST_TIMEOUT_SECONDS"]["value"] == "30"
    assert env["LLMHUB_RESYNC_SECONDS"]["value"] == "300"


def test_operator_timeouts_reach_settings_the_operator_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sets = ["operator.kubeRequestTimeoutSeconds=5", "operator.resyncSeconds=60"]
    env = env_of(container(one(render(sets=sets), "Deployment", "-operator")))
    for name in ("KUBE_REQUEST_TIMEOUT_SECONDS", "LLMHUB_RESYNC_SECONDS"):
        monkeypatch.setenv(name, env[name]["value"])
    assert OperatorSettings().kube_request_timeout_seconds == 5
    assert interval_from_env() == 60


def test_operator_rolls_one_new_pod_at_a_time_while_the_lease_guards_overlap(
    default_docs: list[Manifest],
) -> None:
    assert one(default_docs, "Deployment", "-operator")["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }


def test_gateway_gets_an_api_token_only_for_the_kubernetes_auth_mode(
    default_docs: list[Manifest],
) -> None:
    """By default (kubernetes mode) the pod mounts its token to send TokenReviews; without
    that mode the gateway never calls the Kubernetes API and gets no token."""
    spec = one(default_docs, "Deployment", "-gateway")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is True
    assert one(default_docs, "ServiceAccount", "-gateway")["automountServiceAccountToken"] is False
    docs = render(sets=["gateway.auth.modes={entra}", *ENTRA])
    spec = one(docs, "Deployment", "-gateway")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False


ENTRA = ["gateway.auth.entra.tenants={t1}", "gateway.auth.entra.audiences={api://hub}"]


def test_claude_token_comes_from_the_operator_secret_optionally() -> None:
    docs = render([ci_file("aks-workload-identity")])
    env = env_of(container(one(docs, "Deployment", "-gateway")))
    ref = env["CLAUDE_CODE_OAUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "claude-credentials", "key": "CLAUDE_CODE_OAUTH_TOKEN", "optional": True}
    expires = env["CLAUDE_TOKEN_EXPIRES_AT"]["valueFrom"]["secretKeyRef"]
    assert expires == {"name": "claude-credentials", "key": "expires_at", "optional": True}
    assert env["CLAUDE_MODEL"]["value"] == "claude-sonnet-4-5-20250929"
    assert env["GEMINI_MODEL"]["value"] == "gemini-2.5-pro"
    assert "CLAUDE_CLI_PATH" not in env, "unset means the SDK's bundled CLI"
    assert env["GEMINI_CLI_PATH"]["value"] == "gemini"
    volume = next(
        v
        for v in one(docs, "Deployment", "-gateway")["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "gemini-auth"
    )
    assert volume["secret"]["secretName"] == "gemini-credentials"


def test_gateway_reads_the_provider_target_secret_name_when_it_is_overridden() -> None:
    docs = render([ci_file("external-redis")])
    env = env_of(container(one(docs, "Deployment", "-gateway")))
    assert env["CLAUDE_CODE_OAUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "claude-token"
    provider = one(docs, "LLMProvider")
    assert provider["spec"]["target"]["secretName"] == "claude-token"


def test_kind_values_point_the_gateway_at_the_fake_clis() -> None:
    env = env_of(container(one(render([ci_file("kind")]), "Deployment", "-gateway")))
    assert env["CLAUDE_CLI_PATH"]["value"] == "/opt/fakes/fake_claude.py"
    assert env["GEMINI_CLI_PATH"]["value"] == "/opt/fakes/fake_gemini.py"


def test_mcp_allowed_hosts_list_every_in_cluster_service_name(default_docs: list[Manifest]) -> None:
    env = env_of(container(one(default_docs, "Deployment", "-gateway")))
    svc = one(default_docs, "Service", "-gateway")["metadata"]["name"]
    assert env["MCP_ALLOWED_HOSTS"]["value"].split(",") == [
        svc,
        f"{svc}.hub",
        f"{svc}.hub.svc",
        f"{svc}.hub.svc.cluster.local",
    ]


def test_mcp_allowed_hosts_take_extra_hosts_from_values() -> None:
    docs = render([ci_file("aks-workload-identity")])
    env = env_of(container(one(docs, "Deployment", "-gateway")))
    assert env["MCP_ALLOWED_HOSTS"]["value"].split(",")[-1] == "llm.example.internal"


def test_autoscaling_replaces_the_fixed_replica_count() -> None:
    docs = render([ci_file("aks-workload-identity")])
    assert "replicas" not in one(docs, "Deployment", "-gateway")["spec"]
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert (
        hpa["spec"]["scaleTargetRef"]["name"]
        == one(docs, "Deployment", "-gateway")["metadata"]["name"]
    )
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)


def test_network_policy_admits_only_the_named_namespaces_and_pods() -> None:
    docs = render([ci_file("aks-workload-identity")])
    policy = one(docs, "NetworkPolicy")
    sources = policy["spec"]["ingress"][0]["from"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}
    } in sources
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "n8n"}}} in sources
    assert len(sources) == 3, "the two from values and the helm test pod"
    admin = policy["spec"]["ingress"][1]  # the operator, on the admin port only
    assert admin["ports"] == [{"port": "admin", "protocol": "TCP"}]
    assert [
        s["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for s in admin["from"]
    ] == ["operator"]
    test_pod = one(docs, "Pod")
    test_source = next(
        s
        for s in sources
        if s.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
    )
    assert (
        test_source["podSelector"]["matchLabels"].items() <= test_pod["metadata"]["labels"].items()
    )


def test_no_network_policy_unless_asked(default_docs: list[Manifest]) -> None:
    assert find(default_docs, "NetworkPolicy") == []
    assert find(default_docs, "HorizontalPodAutoscaler") == []


def test_pod_disruption_budgets_select_their_own_component() -> None:
    docs = render([ci_file("ha-operator")])
    for suffix in ("-gateway", "-operator"):
        pdb = one(docs, "PodDisruptionBudget", suffix)
        labels = one(docs, "Deployment", suffix)["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_selectors_of_components_never_overlap(default_docs: list[Manifest]) -> None:
    selectors = [
        frozenset(d["spec"]["selector"]["matchLabels"].items())
        for d in find(default_docs, "Deployment")
    ]
    assert len(selectors) == 3
    for i, a in enumerate(selectors):
        for b in selectors[i + 1 :]:
            assert not a <= b
            assert not b <= a


def test_gateway_drains_before_kubernetes_kills_it(default_docs: list[Manifest]) -> None:
    """preStop sleep, then the drain, then uvicorn's graceful shutdown: the grace period must
    cover all three, and the gateway must be told the same numbers."""
    spec = one(default_docs, "Deployment", "-gateway")["spec"]["template"]["spec"]
    c = container(one(default_docs, "Deployment", "-gateway"))
    env = env_of(c)
    pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = int(env["SHUTDOWN_DRAIN_SECONDS"]["value"])
    graceful = int(env["SHUTDOWN_GRACEFUL_SECONDS"]["value"])
    assert (pre_stop, drain, graceful) == (5, 30, 10)
    assert spec["terminationGracePeriodSeconds"] > pre_stop + drain + graceful
    assert env["SSE_HEARTBEAT_SECONDS"]["value"] == "15"


def test_a_grace_period_shorter_than_the_drain_is_refused() -> None:
    done = run_helm(
        "template",
        "x",
        str(CHART),
        "--set",
        "gateway.shutdown.drainSeconds=120",
    )
    assert done.returncode != 0
    assert "gateway.terminationGracePeriodSeconds (60) must be longer than" in done.stderr
    docs = render(
        sets=["gateway.shutdown.drainSeconds=120", "gateway.terminationGracePeriodSeconds=140"]
    )
    assert (
        one(docs, "Deployment", "-gateway")["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"
        ]
        == 140
    )


def test_no_pre_stop_hook_when_its_sleep_is_zero() -> None:
    docs = render(sets=["gateway.shutdown.preStopSleepSeconds=0"])
    assert "lifecycle" not in container(one(docs, "Deployment", "-gateway"))
