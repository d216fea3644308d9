"""The registry maps every model id the real adapters list back to the adapter listing it."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmhub_gateway.core.config import Settings
from llmhub_gateway.errors import UnknownProvider
from llmhub_gateway.registry import Registry, build_providers


def test_every_model_the_real_adapters_list_maps_back_to_them(tmp_path: Path) -> None:
    creds = tmp_path / "oauth_creds.json"
    creds.write_text("{}")
    settings = Settings(
        claude_code_oauth_token="t",  # type: ignore[arg-type]
        claude_model="opus",  # an alias as the default: listed first, still servable
        gemini_auth_path=creds,
    )
    registry = Registry(build_providers(settings), settings)
    listed = [(p.name, m) for p in registry.configured() for m in p.models()]
    assert ("claude", "claude-sonnet") in listed  # the CLI's alias, under a routable id
    assert ("claude", "opus") in listed
    assert {name for name, _ in listed} == {"claude", "gemini"}
    for name, model in listed:
        assert registry.for_model(model).name == name, model
    assert registry.for_model("claude-3-7-sonnet-20250219").name == "claude"  # by prefix
    with pytest.raises(UnknownProvider):
        registry.for_model("gpt-4o")
