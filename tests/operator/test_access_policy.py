"""Which vaults and secrets an LLMProvider may name, decided before any request."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmhub_operator.access_policy import DEFAULT_VAULTS, AccessPolicy, PolicyError

KV = "https://team-a-kv.vault.azure.net"


@pytest.mark.parametrize(
    ("vault", "allowed"),
    [
        ("https://team-a-kv.vault.azure.net", True),
        ("https://kv.vault.azure.cn", True),
        ("https://kv.vault.usgovcloudapi.net", True),
        ("https://kv.vault.microsoftazure.de", True),
        ("https://vault.azure.net", False),  # the bare suffix is no vault
        ("https://kv.vault.azure.net.attacker.example", False),
        ("https://attacker.example", False),
        ("https://127.0.0.1:8443", False),
    ],
)
def test_default_policy_allows_the_azure_key_vault_suffixes_only(vault: str, allowed: bool) -> None:
    policy = AccessPolicy.from_env({})
    assert policy.vaults == DEFAULT_VAULTS
    assert not policy.explicit
    refusal = policy.check("team-a", vault, "claude-token", None)
    assert (refusal is None) == allowed
    if refusal is not None:
        assert refusal.reason == "VaultNotAllowed"


def test_an_explicit_list_with_ports_names_the_stand_in_vault() -> None:
    policy = AccessPolicy.from_env({"LLMHUB_ALLOWED_VAULTS": "127.0.0.1:8443, *.vault.azure.net"})
    assert policy.explicit
    assert policy.check("ns", "https://127.0.0.1:8443", "s", None) is None
    assert policy.check("ns", "https://127.0.0.1:9999", "s", None) is not None
    assert policy.check("ns", KV, "s", None) is None


def test_namespace_rules_bind_a_team_to_its_vault_and_secret_names() -> None:
    rules = (
        '{"team-a": {"vaults": ["team-a-kv.vault.azure.net"], "secrets": ["claude-*"]},'
        ' "team-*": {"vaults": ["shared-kv.vault.azure.net"]}}'
    )
    policy = AccessPolicy.from_env({"LLMHUB_NAMESPACE_VAULTS": rules})
    assert policy.check("team-a", KV, "claude-oauth", None) is None
    wrong_vault = policy.check("team-a", "https://team-b-kv.vault.azure.net", "claude-oauth", None)
    assert wrong_vault is not None
    assert wrong_vault.reason == "VaultNotAllowed"
    assert "namespace team-a" in wrong_vault.message
    wrong_secret = policy.check("team-a", KV, "gemini-oauth", None)
    assert wrong_secret is not None
    assert wrong_secret.reason == "SecretNotAllowed"
    assert policy.check("team-b", "https://shared-kv.vault.azure.net", "x", None) is None
    assert policy.check("team-b", KV, "x", None) is not None  # the pattern rule applies
    assert policy.check("other", KV, "x", None) is None  # no rule: the global list


def test_required_namespace_identity_spares_only_the_operator_namespace() -> None:
    env = {"LLMHUB_REQUIRE_NAMESPACE_IDENTITY": "true", "POD_NAMESPACE": "hub"}
    policy = AccessPolicy.from_env(env)
    assert policy.check("hub", KV, "s", None) is None
    assert policy.check("team-a", KV, "s", "kv-reader") is None
    refusal = policy.check("team-a", KV, "s", None)
    assert refusal is not None
    assert refusal.reason == "NamespaceIdentityRequired"


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"LLMHUB_NAMESPACE_VAULTS": "{not json"}, "not valid JSON"),
        ({"LLMHUB_NAMESPACE_VAULTS": '["team-a"]'}, "JSON object"),
        ({"LLMHUB_NAMESPACE_VAULTS": '{"a": {"vaults": "kv"}}'}, "lists of patterns"),
        ({"LLMHUB_REQUIRE_NAMESPACE_IDENTITY": "true"}, "POD_NAMESPACE"),
    ],
)
def test_bad_policy_settings_are_refused(env: dict[str, str], complaint: str) -> None:
    with pytest.raises(PolicyError, match=complaint):
        AccessPolicy.from_env(env)


def test_unverified_challenges_need_an_explicit_allow_list_or_the_operator_will_not_start() -> None:
    env = {"LLMHUB_AZURE_VERIFY_CHALLENGE_RESOURCE": "false", "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [sys.executable, "-m", "llmhub_operator", "--metrics-port=0", "--health-port=0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode != 0
    assert "LLMHUB_ALLOWED_VAULTS" in run.stderr
    assert "Traceback" not in run.stderr
