"""docs/aks.md: every step from an empty subscription; its values install what it built."""

from __future__ import annotations

import re
from pathlib import Path
from string import Template
from typing import Any

import yaml

from tests.chart.conftest import CHART, run_helm
from tests.ship.dockerfiles import REPO

GUIDE = (REPO / "docs" / "aks.md").read_text()
CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())
# What `az ...` would print for the variables the guide captures from Azure.
FROM_AZURE = {
    "ACR_LOGIN_SERVER": "llmmcphub4242.azurecr.io",
    "CLIENT_ID": "11111111-2222-3333-4444-555555555555",
    "TENANT_ID": "66666666-7777-8888-9999-000000000000",
    "KV_URL": "https://llm-mcp-hub-kv-4242.vault.azure.net/",
}


def exports() -> dict[str, str]:
    """The guide's `export NAME=value` lines, `${OTHER}` expanded, $RANDOM as 4242."""
    found: dict[str, str] = {}
    for name, value in re.findall(r"^export (\w+)=([^\s\"]+)", GUIDE, re.M):
        found[name] = Template(value.replace("$RANDOM", "4242")).safe_substitute(found)
    return found


def commands() -> str:
    """Every shell block of the guide, continuation lines joined."""
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE, re.S)
    return re.sub(r"\\\n\s*", " ", "\n".join(blocks))


def values_file() -> dict[str, Any]:
    (heredoc,) = re.findall(r"cat > values-aks.yaml <<EOF\n(.*?)\nEOF\n", GUIDE, re.S)
    text = Template(heredoc).substitute({**exports(), **FROM_AZURE})
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def test_the_guide_walks_from_an_empty_subscription_to_teardown_in_order() -> None:
    steps = [
        r"az provider register --namespace",
        r"az group create --name \"\$RG\"",
        r"az acr create --resource-group \"\$RG\" --name \"\$ACR\"",
        r"az acr build --registry \"\$ACR\" .*--file Dockerfile\.operator \.",
        r"az acr build --registry \"\$ACR\" .*--file Dockerfile\.gateway \.",
        r"az aks create .*--enable-oidc-issuer --enable-workload-identity",
        r"az aks update --resource-group \"\$RG\" --name \"\$AKS\" --attach-acr \"\$ACR\"",
        r"az keyvault create .*--enable-rbac-authorization true",
        r"az identity create",
        r"--role \"Key Vault Secrets User\" --scope \"\$KV_ID\"",
        r"az identity federated-credential create .*--audiences api://AzureADTokenExchange",
        r"llm-mcp-hub token push claude --vault-url \"\$KV_URL\"",
        r"llm-mcp-hub token push gemini --vault-url \"\$KV_URL\"",
        r"az keyvault secret set --vault-name \"\$KV\" --name claude-oauth-token",
        r"az keyvault secret set --vault-name \"\$KV\" --name gemini-oauth-creds",
        r"helm install \"\$RELEASE\" oci://ghcr\.io/llm-mcp-hub/charts/llm-mcp-hub"
        r" --version \"\$VERSION\"",
        r"helm install \"\$RELEASE\" \./charts/llm-mcp-hub",
        r"kubectl -n \"\$NS\" get llmproviders",
        r"helm test \"\$RELEASE\"",
        r"curl -s localhost:9090/health/tokens",
        r"helm uninstall \"\$RELEASE\"",
        r"az group delete --name \"\$RG\"",
    ]
    text = commands()
    at = 0
    for step in steps:
        match = re.compile(step).search(text, at)
        assert match, f"missing, or out of order: {step}"
        at = match.end()
    headings = re.findall(r"^## (.+)$", GUIDE, re.M)
    assert headings[-1] == "Troubleshooting"
    assert "ImagePullBackOff" in GUIDE.split("## Troubleshooting")[1]


def test_the_guide_builds_the_version_the_chart_installs() -> None:
    assert exports()["VERSION"] == CHART_META["appVersion"]
    built = set(re.findall(r'--image "(llm-mcp-hub-\w+):\$\{VERSION\}"', commands()))
    assert built == {"llm-mcp-hub-operator", "llm-mcp-hub-gateway"}


def test_the_values_file_installs_the_acr_images_with_the_federated_service_account(
    tmp_path: Path,
) -> None:
    env = exports()
    values = values_file()
    path = tmp_path / "values-aks.yaml"
    path.write_text(yaml.safe_dump(values))
    done = run_helm(
        "template", env["RELEASE"], str(CHART), "--namespace", env["NS"], "-f", str(path)
    )
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    deployments = {
        d["metadata"]["name"].rsplit("-", 1)[-1]: d for d in docs if d["kind"] == "Deployment"
    }
    acr, version = FROM_AZURE["ACR_LOGIN_SERVER"], env["VERSION"]
    for component in ("operator", "gateway"):
        (container,) = deployments[component]["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"{acr}/llm-mcp-hub-{component}:{version}"
    # The federated credential's subject names the ServiceAccount the operator really runs as.
    assert '--subject "system:serviceaccount:${NS}:${OPERATOR_SA}"' in GUIDE
    sa_name = deployments["operator"]["spec"]["template"]["spec"]["serviceAccountName"]
    assert sa_name == env["OPERATOR_SA"]
    (sa,) = [d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == sa_name]
    assert (
        sa["metadata"]["annotations"]["azure.workload.identity/client-id"]
        == (FROM_AZURE["CLIENT_ID"])
    )
    # The Key Vault secrets the providers read are the ones the guide writes.
    written = set(
        re.findall(r'az keyvault secret set --vault-name "\$KV" --name ([\w-]+)', commands())
    )
    assert written == {"claude-oauth-token", "gemini-oauth-creds"}
    assert {p["secretName"] for p in values["providers"]} == written


def test_readme_first_screen_links_the_aks_guide_next_to_make_run() -> None:
    first_screen = (REPO / "README.md").read_text().split("\n## ")[0]
    assert re.search(r"^make run\b", first_screen, re.M)
    assert re.search(r"^make test\b", first_screen, re.M)
    run_at = first_screen.index("make run")
    link_at = first_screen.index("](docs/aks.md)")
    assert 0 < link_at - run_at < 400, "the AKS link sits right by make run"


def test_the_guide_installs_the_chart_where_the_release_pushes_it() -> None:
    owner = CHART_META["home"].removeprefix("https://github.com/").split("/")[0]
    release = (REPO / ".github" / "workflows" / "release.yml").read_text()
    assert 'helm push "dist/llm-mcp-hub-${VERSION}.tgz" "oci://${REGISTRY}/charts"' in release
    # REGISTRY is ghcr.io/<owner> (scripts/release-version.sh), the chart's name is the artifact's.
    assert f"oci://ghcr.io/{owner}/charts/{CHART_META['name']}" in GUIDE
