"""The gateway's caller identity and limits: values mapped onto AUTH_*/LIMIT_*/MCP_* env, the
static keys Secret mounted read-only, a default that is not ``none``, and clear refusals."""

from __future__ import annotations

import pytest

from llmhub_gateway.core.config import Settings
from tests.chart.conftest import CHART, Manifest, container, env_of, one, render, run_helm

ENTRA = [
    "gateway.auth.modes={entra,static}",
    "gateway.auth.entra.tenants={t1,t2}",
    "gateway.auth.entra.audiences={api://hub,aaaa-bbbb}",
    "gateway.auth.entra.domains.contoso\\.com=t1",
    "gateway.auth.entra.namedCallers={entra:t1/0000-aa}",
    "gateway.auth.static.existingSecret=hub-keys",
    "gateway.auth.adminCallers={ops}",
    "gateway.mcp.requiredScopes={chat}",
    "gateway.limits.caller.dailyTokens=50000",
    "gateway.limits.subscription.allowOverage=true",
]


def _values(docs: list[Manifest]) -> dict[str, str]:
    env = env_of(container(one(docs, "Deployment", "-gateway")))
    return {name: e["value"] for name, e in env.items() if "value" in e}


def test_the_default_is_kubernetes_callers_with_limits(default_docs: list[Manifest]) -> None:
    env = _values(default_docs)
    assert env["AUTH_MODES"] == "kubernetes"
    assert env["AUTH_KUBERNETES_AUDIENCE"] == "llm-mcp-hub-gateway"
    assert (
        env["MCP_RESOURCE_URL"] == "http://hub-llm-mcp-hub-gateway.hub.svc.cluster.local:8000/mcp"
    )
    assert env["LIMIT_CALLER_REQUESTS_PER_MINUTE"] == "20"
    assert env["LIMIT_SUBSCRIPTION_CONCURRENT_TURNS"] == "4"
    assert env["LIMIT_ALLOW_OVERAGE"] == "false"  # paid overage refused unless the owner opts in
    assert "AUTH_STATIC_KEYS_FILE" not in env


def test_entra_and_static_values_reach_the_settings_the_gateway_reads() -> None:
    docs = render(sets=ENTRA)
    env = _values(docs)
    settings = Settings(
        **{k.lower(): v for k, v in env.items() if k.startswith(("AUTH_", "LIMIT_", "MCP_"))}
    )
    assert settings.modes() == frozenset({"entra", "static"})
    assert settings.auth_entra_tenants == "t1,t2"
    assert settings.auth_entra_audiences == "api://hub,aaaa-bbbb"
    assert settings.auth_entra_domains == "contoso.com=t1"
    assert settings.auth_named_callers == "entra:t1/0000-aa"
    assert settings.auth_admin_callers == "ops"
    assert settings.mcp_required_scopes == "chat"
    assert settings.limit_caller_daily_tokens == 50000
    assert settings.limit_allow_overage is True
    assert str(settings.auth_static_keys_file) == "/etc/llmhub/static-keys/keys"
    deployment = one(docs, "Deployment", "-gateway")
    mount = next(m for m in container(deployment)["volumeMounts"] if m["name"] == "static-keys")
    assert mount == {
        "name": "static-keys",
        "mountPath": "/etc/llmhub/static-keys",
        "readOnly": True,
    }
    volume = next(
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "static-keys"
    )
    assert volume["secret"]["secretName"] == "hub-keys"
    assert volume["secret"]["items"] == [{"key": "keys", "path": "keys"}]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["gateway.auth.modes={static}"], "set gateway.auth.static.existingSecret"),
        (["gateway.auth.modes={entra}"], "set gateway.auth.entra.tenants and"),
        (["gateway.auth.modes={bogus}"], "gateway.auth.modes.0"),
        (["gateway.auth.kubernetes.allowed={Not Valid}"], "gateway.auth.kubernetes.allowed.0"),
        (["gateway.limits.caller.requestsPerMinute=-1"], "requestsPerMinute"),
        (["gateway.requests.maxBodyBytes=10"], "maxBodyBytes"),
    ],
)
def test_bad_auth_values_are_refused_with_a_clear_message(sets: list[str], message: str) -> None:
    done = run_helm(
        "template", "hub", str(CHART), "-n", "hub", *(a for s in sets for a in ("--set", s))
    )
    assert done.returncode != 0
    assert message in done.stderr


def test_request_size_limits_reach_the_settings(default_docs: list[Manifest]) -> None:
    env = _values(default_docs)
    assert (env["MAX_BODY_BYTES"], env["MAX_PROMPT_BYTES"]) == ("2097152", "1048576")
    env = _values(
        render(
            sets=["gateway.requests.maxBodyBytes=4194304", "gateway.requests.maxPromptBytes=65536"]
        )
    )
    settings = Settings(**{k.lower(): v for k, v in env.items() if k.startswith("MAX_")})
    assert (settings.max_body_bytes, settings.max_prompt_bytes) == (4194304, 65536)


def test_session_caps_and_readiness_age_reach_the_settings(default_docs: list[Manifest]) -> None:
    env = _values(default_docs)
    defaults = Settings()
    assert int(env["SESSION_MAX_BYTES"]) == defaults.session_max_bytes
    assert int(env["SESSION_MAX_TURNS"]) == defaults.session_max_turns
    assert float(env["READY_CHECK_SECONDS"]) == defaults.ready_check_seconds
    sets = [
        "gateway.requests.sessionMaxBytes=65536",
        "gateway.requests.sessionMaxTurns=12",
        "gateway.requests.readyCheckSeconds=3",
    ]
    env = _values(render(sets=sets))
    names = ("SESSION_MAX_BYTES", "SESSION_MAX_TURNS", "READY_CHECK_SECONDS")
    settings = Settings(**{k.lower(): env[k] for k in names})
    assert (settings.session_max_bytes, settings.session_max_turns) == (65536, 12)
    assert settings.ready_check_seconds == 3
    done = run_helm("template", "hub", str(CHART), "--set", "gateway.requests.sessionMaxBytes=10")
    assert done.returncode != 0
    assert "sessionMaxBytes" in done.stderr
