"""Masking values reach the MASKING_* settings the gateway reads (and that it accepts), off by
default; a bad name is refused by the schema before anything is applied."""

from __future__ import annotations

import json

import pytest

from llmhub_gateway.core.config import Settings
from tests.chart.conftest import CHART, Manifest, container, env_of, one, render, run_helm


def _env(docs: list[Manifest]) -> dict[str, str]:
    env = env_of(container(one(docs, "Deployment", "-gateway")))
    return {name: e["value"] for name, e in env.items() if name.startswith("MASKING_")}


def test_off_by_default(default_docs: list[Manifest], monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env(default_docs)
    assert env == {
        "MASKING_ENABLED": "false",
        "MASKING_RECOGNIZERS": "all",
        "MASKING_EXTRA_PATTERNS": "{}",
        "MASKING_PROVIDERS": "{}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings().masking_enabled is False


def test_values_reach_settings_the_gateway_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(
        sets=[
            "gateway.masking.enabled=true",
            "gateway.masking.recognizers={private_ip,email,aws_arn}",
            "gateway.masking.extraPatterns.ticket=TCK-[0-9]+",
            "gateway.masking.providers.gemini=off",
        ]
    )
    env = _env(docs)
    assert env["MASKING_RECOGNIZERS"] == "private_ip,email,aws_arn"
    assert json.loads(env["MASKING_EXTRA_PATTERNS"]) == {"ticket": "TCK-[0-9]+"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.masking_enabled is True
    assert settings.masking_providers == {"gemini": "off"}


def test_bad_pattern_name_is_refused() -> None:
    done = run_helm(
        "template", "hub", str(CHART), "--set", "gateway.masking.extraPatterns.Bad-Name=x"
    )
    assert done.returncode != 0
    assert "extraPatterns" in done.stderr
