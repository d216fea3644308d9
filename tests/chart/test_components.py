"""Redis (built-in or external), LLMProviders, labels, images, the CRD, NOTES and the helm test."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.chart.conftest import (
    CHART,
    REPO,
    Manifest,
    ci_file,
    container,
    env_of,
    find,
    one,
    render,
    render_notes,
    run_helm,
)

APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]


def test_built_in_redis_is_the_default_and_the_gateway_uses_it(
    default_docs: list[Manifest],
) -> None:
    redis = one(default_docs, "Deployment", "-redis")
    svc = one(default_docs, "Service", "-redis")
    env = env_of(container(one(default_docs, "Deployment", "-gateway")))
    assert env["REDIS_URL"]["value"] == f"redis://{svc['metadata']['name']}:6379/0"
    assert (
        svc["spec"]["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()
    )
    args = container(redis)["args"]
    assert "--requirepass" not in args
    # Any redis-server build serves the gateway pods, not only docker.io's (protected mode off
    # there by a patch): found on the real node with Debian's (tests/node).
    assert args[args.index("--protected-mode") + 1] == "no"
    data = next(v for v in redis["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    assert "emptyDir" in data


def test_built_in_redis_with_password_and_persistence() -> None:
    docs = render([ci_file("aks-workload-identity")])
    secret = one(docs, "Secret", "-redis")
    assert set(secret["data"]) == {"redis-password"}
    redis = one(docs, "Deployment", "-redis")
    c = container(redis)
    assert c["args"][-2:] == ["--requirepass", "$(REDIS_PASSWORD)"]
    assert (
        env_of(c)["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
        == secret["metadata"]["name"]
    )
    env = env_of(container(one(docs, "Deployment", "-gateway")))
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    names = list(env)
    assert names.index("REDIS_PASSWORD") < names.index("REDIS_URL"), "$(VAR) needs it defined first"
    assert env["REDIS_URL"]["value"].startswith("redis://:$(REDIS_PASSWORD)@")
    pvc = one(docs, "PersistentVolumeClaim")
    assert pvc["spec"]["storageClassName"] == "managed-csi"
    data = next(v for v in redis["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    password = "change-me-0123456789"
    assert all(password not in str(v) for v in env.values()), (
        "the password only travels in the Secret"
    )


def test_external_redis_url_from_an_existing_secret_replaces_the_built_in_one() -> None:
    docs = render([ci_file("external-redis")])
    assert find(docs, "Deployment", "-redis") == []
    assert find(docs, "Service", "-redis") == []
    env = env_of(container(one(docs, "Deployment", "-gateway")))
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "llm-mcp-hub-redis-url",
        "key": "url",
    }
    assert "REDIS_PASSWORD" not in env


def test_external_redis_url_from_values() -> None:
    docs = render([ci_file("ha-operator")])
    env = env_of(container(one(docs, "Deployment", "-gateway")))
    assert env["REDIS_URL"]["value"] == "rediss://redis.example.internal:6380/0"


def test_llmproviders_are_rendered_from_values_and_roll_the_chart_gateway() -> None:
    docs = render([ci_file("aks-workload-identity")])
    gateway = one(docs, "Deployment", "-gateway")["metadata"]["name"]
    providers = {p["metadata"]["name"]: p for p in find(docs, "LLMProvider")}
    assert set(providers) == {"claude", "gemini"}
    claude = providers["claude"]
    assert claude["apiVersion"] == "llm-mcp-hub.io/v1alpha1"
    assert claude["metadata"]["namespace"] == "hub"
    assert claude["spec"] == {
        "provider": "claude",
        "model": "claude-sonnet-4-5-20250929",
        "source": {
            "azureKeyVault": {
                "vaultUrl": "https://llm-mcp-hub-kv.vault.azure.net",
                "secretName": "claude-oauth-token",
                "version": "",
            }
        },
        "refreshInterval": "5m",
        "target": {"secretName": "claude-credentials"},
        "gateway": {"deploymentName": gateway},
        "expiry": {"warnBeforeDays": 3, "maxAgeDays": 365},
    }
    assert providers["gemini"]["spec"]["refreshInterval"] == "10m"
    assert providers["gemini"]["spec"]["expiry"]["warnBeforeDays"] == 7
    # Only a live install without the CRD makes them a hook (tests/chart_k8s): rendered for
    # GitOps (no cluster to look up) they are plain objects, never an Argo CD / Flux hook.
    assert all("annotations" not in p["metadata"] for p in providers.values())


def test_no_llmproviders_without_providers(default_docs: list[Manifest]) -> None:
    assert find(default_docs, "LLMProvider") == []


def test_every_object_carries_the_standard_labels_and_common_labels() -> None:
    docs = render(sets=("commonLabels.team=platform",))
    for d in docs:
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "llm-mcp-hub", d["metadata"]["name"]
        assert labels["app.kubernetes.io/instance"] == "hub"
        assert labels["app.kubernetes.io/version"] == APP_VERSION
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == f"llm-mcp-hub-{APP_VERSION}"
        assert labels["team"] == "platform"


def test_images_default_to_the_chart_app_version(default_docs: list[Manifest]) -> None:
    assert container(one(default_docs, "Deployment", "-operator"))["image"] == (
        f"ghcr.io/llm-mcp-hub/llm-mcp-hub-operator:{APP_VERSION}"
    )
    assert container(one(default_docs, "Deployment", "-gateway"))["image"] == (
        f"ghcr.io/llm-mcp-hub/llm-mcp-hub-gateway:{APP_VERSION}"
    )


def test_image_digest_wins_and_global_registry_prefixes_bare_repositories() -> None:
    digest = "sha256:" + "a" * 64
    docs = render(
        sets=(
            f"gateway.image.digest={digest}",
            "operator.image.repository=llmhub/operator",
            "global.imageRegistry=myacr.azurecr.io",
        )
    )
    gateway = container(one(docs, "Deployment", "-gateway"))["image"]
    assert gateway == f"ghcr.io/llm-mcp-hub/llm-mcp-hub-gateway@{digest}"
    operator = container(one(docs, "Deployment", "-operator"))["image"]
    assert operator == f"myacr.azurecr.io/llmhub/operator:{APP_VERSION}"


CRD_FILES = ("llm-mcp-hub.io_llmproviders.yaml", "llm-mcp-hub.io_llmgateways.yaml")


@pytest.mark.parametrize("name", CRD_FILES)
def test_chart_crd_copy_is_byte_identical_to_the_top_level_crd(name: str) -> None:
    top = REPO / "crds" / name
    assert (CHART / "files" / "crds" / top.name).read_bytes() == top.read_bytes()
    assert not (CHART / "crds").exists(), "Helm never upgrades crds/: the CRD is a template"


def test_every_top_level_crd_is_shipped_by_the_chart() -> None:
    assert sorted(p.name for p in (REPO / "crds").glob("*.yaml")) == sorted(CRD_FILES)


@pytest.mark.parametrize("name", CRD_FILES)
def test_crd_template_is_the_crd_file_plus_keep_and_chart_labels(
    default_docs: list[Manifest], name: str
) -> None:
    top = yaml.safe_load((REPO / "crds" / name).read_text())
    crds = find(default_docs, "CustomResourceDefinition")
    [crd] = [c for c in crds if c["metadata"]["name"] == top["metadata"]["name"]]
    assert crd["spec"] == top["spec"]
    assert crd["metadata"]["name"] == top["metadata"]["name"]
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    labels = crd["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "hub"
    assert labels["app.kubernetes.io/managed-by"] == "Helm"
    assert top["metadata"]["labels"].items() <= labels.items()


def test_crd_is_left_out_when_managed_elsewhere() -> None:
    assert find(render(sets=("crds.install=false",)), "CustomResourceDefinition") == []


def test_helm_test_pod_checks_gateway_readiness(default_docs: list[Manifest]) -> None:
    pod = one(default_docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    c = pod["spec"]["containers"][0]
    assert c["image"] == container(one(default_docs, "Deployment", "-gateway"))["image"]
    svc = one(default_docs, "Service", "-gateway")["metadata"]["name"]
    assert c["command"][-1] == f"http://{svc}:8000/health/ready"
    assert "urlopen" in c["command"][2]


class _Health(http.server.BaseHTTPRequestHandler):
    """Answers /health/ready with the status the test sets on the server."""

    def do_GET(self) -> None:
        status: int = self.server.ready_status  # type: ignore[attr-defined]
        self.send_response(status if self.path == "/health/ready" else 404)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize(("status", "passes"), [(200, True), (503, False)])
def test_helm_test_pod_script_passes_only_on_ready(
    default_docs: list[Manifest], health_server: http.server.HTTPServer, status: int, passes: bool
) -> None:
    """Run the test pod's own Python against a local /health/ready answering `status`."""
    health_server.ready_status = status  # type: ignore[attr-defined]
    script = one(default_docs, "Pod")["spec"]["containers"][0]["command"][2]
    url = f"http://127.0.0.1:{health_server.server_port}/health/ready"
    done = subprocess.run(
        [sys.executable, "-c", script, url], capture_output=True, timeout=30, check=False
    )
    assert (done.returncode == 0) is passes


def test_helm_test_pod_script_fails_when_nothing_answers(default_docs: list[Manifest]) -> None:
    script = one(default_docs, "Pod")["spec"]["containers"][0]["command"][2]
    url = "http://127.0.0.1:9/health/ready"
    done = subprocess.run(
        [sys.executable, "-c", script, url], capture_output=True, timeout=30, check=False
    )
    assert done.returncode != 0


def test_notes_tell_where_it_is_and_the_next_step(tmp_path: Path) -> None:
    notes = render_notes(tmp_path)
    assert "namespace hub" in notes
    assert "http://hub-llm-mcp-hub-gateway.hub.svc.cluster.local:8000" in notes
    assert "create an LLMProvider" in notes
    assert "WARNING: operator.azure.clientId is empty" in notes


def test_notes_without_warning_once_configured(tmp_path: Path) -> None:
    notes = render_notes(
        tmp_path,
        "operator.azure.clientId=00000000-1111-2222-3333-444444444444",
        "providers[0].name=claude",
        "providers[0].provider=claude",
        "providers[0].vaultUrl=https://kv.vault.azure.net",
        "providers[0].secretName=claude",
    )
    assert "WARNING" not in notes
    assert "kubectl -n hub get llmproviders" in notes


@pytest.mark.parametrize(
    ("release", "sets"),
    [
        ("a-release-name-at-helms-limit-of-fifty-three-chars-xy", ()),
        ("llm-mcp-hub", ()),
        ("x", ("fullnameOverride=" + "f" * 63,)),
    ],
)
def test_object_names_fit_63_characters(release: str, sets: tuple[str, ...]) -> None:
    args = ["template", release, str(CHART), "-n", "hub"]
    for s in sets:
        args += ["--set", s]
    done = run_helm(*args)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    names = [d["metadata"]["name"] for d in docs]
    assert names
    assert all(len(n) <= 63 for n in names), names
    assert all(not n.endswith("-") for n in names)
    suffixes = sorted(
        d["metadata"]["name"].rsplit("-", 1)[-1] for d in docs if d["kind"] == "Deployment"
    )
    assert suffixes == ["gateway", "operator", "redis"]


def test_component_pull_secrets_win_over_global_ones() -> None:
    docs = render(
        sets=("global.imagePullSecrets[0]=regcred", "gateway.imagePullSecrets[0].name=gw")
    )
    gateway = one(docs, "Deployment", "-gateway")["spec"]["template"]["spec"]
    operator = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]
    assert gateway["imagePullSecrets"] == [{"name": "gw"}]
    assert operator["imagePullSecrets"] == [{"name": "regcred"}]
    assert one(docs, "Pod")["spec"]["imagePullSecrets"] == [{"name": "gw"}]


def test_global_pod_annotations_merge_under_component_ones() -> None:
    docs = render(
        sets=(
            "global.podAnnotations.a=global",
            "global.podAnnotations.b=global",
            "gateway.podAnnotations.b=gw",
        )
    )
    meta = one(docs, "Deployment", "-gateway")["spec"]["template"]["metadata"]
    assert meta["annotations"] == {"a": "global", "b": "gw"}
    operator_meta = one(docs, "Deployment", "-operator")["spec"]["template"]["metadata"]
    assert operator_meta["annotations"] == {"a": "global", "b": "global"}


def test_vault_policy_values_reach_the_operator_environment(
    renderer: Callable[..., list[Manifest]],
) -> None:
    docs = renderer(
        sets=(
            "operator.keyVault.allowedVaults[0]=team-*.vault.azure.net",
            "operator.keyVault.allowedVaults[1]=10.0.0.7:8443",
            "operator.keyVault.namespaceVaults.team-a.vaults[0]=team-a-kv.vault.azure.net",
            "operator.keyVault.namespaceVaults.team-a.secrets[0]=claude-*",
            "operator.keyVault.requireNamespaceIdentity=true",
        )
    )
    env = env_of(container(one(docs, "Deployment", "-operator")))
    assert env["LLMHUB_ALLOWED_VAULTS"]["value"] == "team-*.vault.azure.net,10.0.0.7:8443"
    rules = json.loads(env["LLMHUB_NAMESPACE_VAULTS"]["value"])
    assert rules == {"team-a": {"vaults": ["team-a-kv.vault.azure.net"], "secrets": ["claude-*"]}}
    assert env["LLMHUB_REQUIRE_NAMESPACE_IDENTITY"]["value"] == "true"
    defaults = env_of(container(one(renderer(), "Deployment", "-operator")))
    assert "LLMHUB_ALLOWED_VAULTS" not in defaults  # the operator's default: Azure's suffixes
