"""The spec parser: defaults, Go durations, and what the CRD schema cannot reject."""

from __future__ import annotations

from typing import Any

import pytest

from llmhub_operator.model import InvalidSpec, parse_duration, parse_spec

VAULT = "https://kv.vault.azure.net"
KV = {"vaultUrl": VAULT, "secretName": "x"}


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "provider": "gemini",
        "source": {"azureKeyVault": {"vaultUrl": VAULT + "/", "secretName": "gemini-creds"}},
    }
    base.update(overrides)
    return base


def test_defaults_fill_target_interval_and_expiry() -> None:
    model = parse_spec("gemini", "hub", spec())
    assert model.target_secret == "gemini-credentials"
    assert model.refresh_seconds == 300
    assert (model.warn_before_days, model.max_age_days) == (3, 365)
    assert model.version is None
    assert model.deployment is None
    assert model.vault_url == VAULT


def test_explicit_fields_are_kept() -> None:
    pinned = "0123456789abcdef0123456789abcdef"
    model = parse_spec(
        "claude",
        "hub",
        spec(
            provider="claude",
            source={"azureKeyVault": {"vaultUrl": VAULT, "secretName": "t", "version": pinned}},
            refreshInterval="1h30m",
            target={"secretName": "custom"},
            gateway={"deploymentName": "gw"},
            expiry={"warnBeforeDays": 7, "maxAgeDays": 30},
        ),
    )
    assert (model.provider, model.version, model.refresh_seconds) == ("claude", pinned, 5400)
    assert (model.target_secret, model.deployment) == ("custom", "gw")
    assert (model.warn_before_days, model.max_age_days) == (7, 30)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("1.5s", 1.5), ("1m30s", 90)]
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5x", "m5", "0s", "500ms", "5m junk"])
def test_bad_durations_are_invalid(text: str) -> None:
    with pytest.raises(InvalidSpec, match="refreshInterval"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"provider": "openai"}, "spec.provider"),
        ({"source": {}}, "azureKeyVault"),
        ({"source": {"azureKeyVault": {"vaultUrl": "http://kv", "secretName": "x"}}}, "vaultUrl"),
        ({"source": {"azureKeyVault": {"vaultUrl": VAULT}}}, "secretName"),
        (
            {"source": {"azureKeyVault": {**KV, "version": "v1"}}},
            "version",
        ),
        ({"refreshInterval": "0s"}, "refreshInterval"),
        ({"expiry": {"maxAgeDays": 0}}, "maxAgeDays"),
        ({"expiry": {"warnBeforeDays": "3"}}, "warnBeforeDays"),
        ({"provider": "claude", "gemini": {"projectId": "team-proj"}}, "spec.gemini.projectId"),
        ({"gemini": "team-proj"}, "spec.gemini"),
    ],
)
def test_invalid_specs_name_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpec, match=field):
        parse_spec("x", "hub", spec(**overrides))


def test_gemini_project_is_carried_and_empty_means_none() -> None:
    parsed = parse_spec("g", "hub", spec(provider="gemini", gemini={"projectId": " team-proj "}))
    assert parsed.gemini_project == "team-proj"
    assert (
        parse_spec("g", "hub", spec(provider="gemini", gemini={"projectId": ""})).gemini_project
        is None
    )
    assert parse_spec("g", "hub", spec(provider="gemini")).gemini_project is None
