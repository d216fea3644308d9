"""The Gemini Code Assist project: per LLMProvider (spec.gemini.projectId) or gateway-wide env."""

from __future__ import annotations

from tests.chart.conftest import CHART, container, find, one, render, run_helm

GEMINI = (
    "providers[0].name=gemini",
    "providers[0].provider=gemini",
    "providers[0].vaultUrl=https://kv.vault.azure.net",
    "providers[0].secretName=gemini-oauth-creds",
)


def test_a_provider_project_becomes_spec_gemini_project_id() -> None:
    docs = render(sets=(*GEMINI, "providers[0].projectId=team-proj-1"))
    (provider,) = find(docs, "LLMProvider")
    assert provider["spec"]["gemini"] == {"projectId": "team-proj-1"}
    env = {e["name"]: e for e in container(one(docs, "Deployment", "-gateway"))["env"]}
    assert "GOOGLE_CLOUD_PROJECT" not in env  # the operator carries it in the Secret


def test_no_project_renders_no_gemini_block_and_no_env() -> None:
    docs = render(sets=GEMINI)
    (provider,) = find(docs, "LLMProvider")
    assert "gemini" not in provider["spec"]


def test_the_gateway_wide_project_is_the_env_the_cli_reads() -> None:
    docs = render(sets=("gateway.gemini.projectId=team-proj-2",))
    env = {e["name"]: e for e in container(one(docs, "Deployment", "-gateway"))["env"]}
    assert env["GOOGLE_CLOUD_PROJECT"] == {"name": "GOOGLE_CLOUD_PROJECT", "value": "team-proj-2"}


def test_a_malformed_project_is_refused_by_the_schema() -> None:
    done = run_helm("template", "t", str(CHART), "--set", "gateway.gemini.projectId=Not A Project")
    assert done.returncode != 0
    assert "projectId" in done.stderr
