"""Masking on an LLMGateway and its override on an LLMProvider reach the gateway's MASKING_*,
as values the real gateway's settings accept and build into the masking stage it runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmhub_gateway.core.config import Settings
from llmhub_gateway.masking.recognizers import NAMES
from llmhub_operator.gateways.model import (
    RECOGNIZERS,
    GatewaySettings,
    parse_gateway,
    served_providers,
)
from llmhub_operator.gateways.render import Owner, render
from llmhub_operator.model import InvalidSpec

ROOT = Path(__file__).resolve().parents[2]
OWNER = Owner("hub", "team-a", "uid-1")


def _provider(name: str, kind: str, masking: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"provider": kind}
    if masking is not None:
        spec["masking"] = masking
    return {"metadata": {"name": name}, "spec": spec, "status": {"contentHash": "sha256:x"}}


def _env(gateway: dict[str, Any], listed: list[dict[str, Any]]) -> dict[str, str]:
    spec = parse_gateway(
        {"providers": {"names": [p["metadata"]["name"] for p in listed]}, **gateway}
    )
    objects = render(OWNER, spec, served_providers(spec, listed), GatewaySettings(image="gw:1"))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_no_masking_anywhere_renders_no_masking_settings() -> None:
    env = _env({}, [_provider("claude", "claude"), _provider("gemini", "gemini")])
    assert not [name for name in env if name.startswith("MASKING_")]


def test_gateway_masking_and_a_provider_override_reach_settings_the_gateway_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = _env(
        {
            "masking": {
                "enabled": True,
                "recognizers": ["private_ip", "aws_arn"],
                "extraPatterns": {"ticket": "TCK-[0-9]+"},
            }
        },
        [
            _provider("claude", "claude"),
            _provider("gemini", "gemini", {"enabled": False}),
        ],
    )
    assert env["MASKING_ENABLED"] == "true"
    assert env["MASKING_RECOGNIZERS"] == "private_ip,aws_arn"
    assert json.loads(env["MASKING_EXTRA_PATTERNS"]) == {"ticket": "TCK-[0-9]+"}
    assert json.loads(env["MASKING_PROVIDERS"]) == {"gemini": "off"}
    for name, value in env.items():
        if name.startswith("MASKING_"):
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.masking_enabled is True
    assert settings.masking_providers == {"gemini": "off"}


def test_a_provider_can_mask_where_its_gateway_does_not() -> None:
    env = _env(
        {},
        [
            _provider("claude", "claude", {"enabled": True}),
            _provider("gemini", "gemini", {"enabled": True, "recognizers": ["email"]}),
        ],
    )
    assert env["MASKING_ENABLED"] == "false"
    assert json.loads(env["MASKING_PROVIDERS"]) == {"claude": "all", "gemini": "email"}


@pytest.mark.parametrize(
    ("name", "pattern", "reason"),
    [
        ("t", "TCK-[0-9", "not a valid regex"),
        ("t", "x*", "matches the empty string"),
        ("aws_arn", "T-[0-9]+", "a built-in recognizer's name"),
        ("all", "T-[0-9]+", "a built-in recognizer's name"),
    ],
)
def test_an_extra_pattern_the_gateway_would_refuse_is_a_spec_error(
    name: str, pattern: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidSpec, match=f"spec.masking.extraPatterns.*{reason}"):
        parse_gateway(
            {"providers": {"names": ["claude"]}, "masking": {"extraPatterns": {name: pattern}}}
        )
    # The gateway would indeed stop at start on it: the operator refuses no more than that.
    monkeypatch.setenv("MASKING_EXTRA_PATTERNS", json.dumps({name: pattern}))
    with pytest.raises(ValueError, match=r"(?i)masking_extra_patterns"):
        Settings()


@pytest.mark.parametrize(
    ("crd", "path"),
    [
        ("llm-mcp-hub.io_llmgateways.yaml", ("masking", "recognizers")),
        ("llm-mcp-hub.io_llmproviders.yaml", ("masking", "recognizers")),
    ],
)
def test_the_crds_offer_exactly_the_gateways_recognizers(crd: str, path: tuple[str, ...]) -> None:
    """The CRDs' enum is a copy of the gateway's list: a recognizer added or renamed there
    must be added here, or the API server refuses what the gateway supports."""
    doc = yaml.safe_load((ROOT / "crds" / crd).read_text())
    schema = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for key in path[:-1]:
        schema = schema["properties"][key]
    assert schema["properties"][path[-1]]["items"]["enum"] == list(NAMES) == list(RECOGNIZERS)
    if crd.endswith("llmgateways.yaml"):  # extra pattern names: none of these
        rules = schema["properties"]["extraPatterns"]["x-kubernetes-validations"]
        (listed,) = [m for r in rules for m in re.findall(r"!\(k in \[(.*)\]\)", r["rule"])]
        assert [n.strip(" '") for n in listed.split(",")] == ["all", *NAMES]
