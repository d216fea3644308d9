"""helm lint and kubernetes-validate --strict over the default and every ci/ value set."""

from __future__ import annotations

import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.chart.conftest import CHART, CI_VALUES, REPO, find, render, render_text, run_helm, tool

VALUE_SETS: list[Path | None] = [None, *CI_VALUES]
IDS = ["default", *(p.name.removesuffix("-values.yaml") for p in CI_VALUES)]
# 1.30 is the oldest AKS minor still supported when this was written; 1.33 a current one.
KUBE_VERSIONS = ["1.30.0", "1.33.0"]


def _files(value_set: Path | None) -> list[Path]:
    if value_set is not None and value_set.name == "node-values.yaml":  # layered on kind's
        return [value_set.with_name("kind-values.yaml"), value_set]
    return [] if value_set is None else [value_set]


def _validate(path: Path, version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--no-warn", "-k", version, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_ci_value_sets_cover_the_realistic_deployments() -> None:
    names = {p.name for p in CI_VALUES}
    assert names == {
        "aks-workload-identity-values.yaml",
        "external-redis-values.yaml",
        "ha-operator-values.yaml",
        "kind-values.yaml",
        "node-values.yaml",
    }


@pytest.mark.parametrize("value_set", VALUE_SETS, ids=IDS)
def test_helm_lint_passes_for_value_set(value_set: Path | None) -> None:
    args = ["lint", "--strict", str(CHART), "--namespace", "hub"]
    for f in _files(value_set):
        args += ["-f", str(f)]
    done = run_helm(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("value_set", VALUE_SETS, ids=IDS)
def test_rendered_objects_pass_strict_kubernetes_validation(
    value_set: Path | None, version: str, tmp_path: Path
) -> None:
    out = tmp_path / "rendered.yaml"
    out.write_text(render_text(_files(value_set)))
    done = _validate(out, version)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed for resource deployment/" in done.stdout


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_strict_validation_rejects_an_unknown_field(version: str, tmp_path: Path) -> None:
    """Proves the validator above really checks: one misspelt field fails it."""
    docs = render()
    deployment = find(docs, "Deployment", "-gateway")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    out = tmp_path / "broken.yaml"
    out.write_text(yaml.safe_dump(deployment))
    done = _validate(out, version)
    assert done.returncode != 0
    assert "readinessProbes" in done.stdout + done.stderr


@pytest.mark.parametrize("plural", ["llmproviders", "llmgateways"])
@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_chart_crd_file_passes_strict_kubernetes_validation(version: str, plural: str) -> None:
    crd = CHART / "files" / "crds" / f"llm-mcp-hub.io_{plural}.yaml"
    done = _validate(crd, version)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"customresourcedefinition/{plural}.llm-mcp-hub.io" in done.stdout


def _crd_schema() -> dict[str, object]:
    crd = yaml.safe_load((REPO / "crds" / "llm-mcp-hub.io_llmproviders.yaml").read_text())
    schema: dict[str, object] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("value_set", CI_VALUES, ids=IDS[1:])
def test_rendered_llmproviders_match_the_crd_schema(value_set: Path) -> None:
    providers = find(render(_files(value_set)), "LLMProvider")
    assert providers, "every ci value set names at least one provider"
    for obj in providers:
        jsonschema.validate(obj, _crd_schema())


def test_crd_schema_check_rejects_a_bad_llmprovider() -> None:
    obj = find(render([CHART / "ci" / "kind-values.yaml"]), "LLMProvider")[0]
    obj["spec"]["source"]["azureKeyVault"]["vaultUrl"] = "http://plain-http.example"
    with pytest.raises(jsonschema.ValidationError, match="does not match"):
        jsonschema.validate(obj, _crd_schema())
