"""Pure builders: the Secret per the gateway contract, and the rollout patch."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes_asyncio import client

from llmhub_operator.rollout import (
    RollRequest,
    annotated_providers,
    needed_annotations,
    refusal_detail,
    rollout_patch,
)
from llmhub_operator.secret_writer import build_secret

OWNER: dict[str, Any] = {
    "apiVersion": "llm-mcp-hub.io/v1alpha1",
    "kind": "LLMProvider",
    "metadata": {"name": "gemini", "namespace": "hub", "uid": "uid-1"},
}


def test_gemini_secret_matches_the_contract() -> None:
    creds = json.dumps({"access_token": "a", "refresh_token": "r"})
    secret = build_secret(
        name="gemini-credentials",
        provider="gemini",
        value=creds,
        source_version="v9",
        content_hash="sha256:1a2b3c4d5e6f",
        expires_at=datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC),
        owner=OWNER,
    )
    meta = secret["metadata"]
    assert (meta["name"], meta["namespace"]) == ("gemini-credentials", "hub")
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "llm-mcp-hub-operator"
    assert meta["annotations"] == {
        "llm-mcp-hub.io/source-version": "v9",
        "llm-mcp-hub.io/content-hash": "sha256:1a2b3c4d5e6f",
        "llm-mcp-hub.io/expires-at": "2027-01-02T03:04:05Z",
    }
    (ref,) = meta["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "LLMProvider",
        "gemini",
        "uid-1",
        True,
    )
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {"oauth_creds.json": creds, "expires_at": "2027-01-02T03:04:05Z"}


def test_a_gemini_project_is_one_more_key_and_only_for_gemini() -> None:
    common: dict[str, Any] = {
        "name": "s",
        "source_version": "v1",
        "content_hash": "sha256:000000000000",
        "expires_at": None,
        "owner": OWNER,
        "gemini_project": "team-proj",
    }
    creds = json.dumps({"access_token": "a", "refresh_token": "r"})
    gemini = build_secret(provider="gemini", value=creds, **common)
    assert set(gemini["data"]) == {"oauth_creds.json", "expires_at", "GOOGLE_CLOUD_PROJECT"}
    assert base64.b64decode(gemini["data"]["GOOGLE_CLOUD_PROJECT"]) == b"team-proj"
    claude = build_secret(provider="claude", value="sk-ant-oat01-x", **common)
    assert set(claude["data"]) == {"CLAUDE_CODE_OAUTH_TOKEN", "expires_at"}


def test_claude_secret_uses_the_env_key_and_tolerates_unknown_expiry() -> None:
    secret = build_secret(
        name="c",
        provider="claude",
        value="sk-ant-oat01-x",
        source_version="v1",
        content_hash="sha256:000000000000",
        expires_at=None,
        owner=OWNER,
    )
    assert set(secret["data"]) == {"CLAUDE_CODE_OAUTH_TOKEN", "expires_at"}
    assert "llm-mcp-hub.io/expires-at" not in secret["metadata"]["annotations"]


HASH, UID = "llm-mcp-hub.io/claude-hash", "llm-mcp-hub.io/claude-secret-uid"


def test_rollout_patch_touches_only_the_given_annotations() -> None:
    assert rollout_patch({HASH: "sha256:abc"}) == {
        "spec": {"template": {"metadata": {"annotations": {HASH: "sha256:abc"}}}}
    }


@pytest.mark.parametrize(
    ("current", "needed"),
    [
        ({}, {HASH: "sha256:new", UID: "u1"}),  # first sync: roll and record both
        ({HASH: "sha256:old", UID: "u1"}, {HASH: "sha256:new", UID: "u1"}),  # rotation
        ({HASH: "sha256:new", UID: "u1"}, {}),  # restart, or a new version of the same value
        ({HASH: "sha256:new", UID: "u0"}, {UID: "u1"}),  # Secret re-created: roll once
        ({HASH: "sha256:new"}, {}),  # template from before the uid existed: no roll to add it
        ({HASH: "sha256:new", UID: "u1", "other": "x"}, {}),  # others' annotations: ignored
    ],
)
def test_rollout_needs_only_what_changed(current: dict[str, str], needed: dict[str, str]) -> None:
    assert needed_annotations(current, RollRequest("claude", "sha256:new", "u1")) == needed


def test_only_our_hash_annotations_name_an_owner() -> None:
    annotations = {
        "llm-mcp-hub.io/claude-hash": "sha256:0123456789ab",
        "llm-mcp-hub.io/claude-secret-uid": "uid-1",
        "llm-mcp-hub.io/old-secret-uid": "uid-2",  # no hash of ours: not counted
        "llm-mcp-hub.io/config-hash": "a1b2",  # someone's own annotation under our prefix
        "example.com/x-hash": "sha256:0123456789ab",
        "llm-mcp-hub.io/-hash": "sha256:0123456789ab",
    }
    assert annotated_providers(annotations) == {"claude"}
    assert rollout_patch({"llm-mcp-hub.io/gone-hash": None}) == {
        "spec": {"template": {"metadata": {"annotations": {"llm-mcp-hub.io/gone-hash": None}}}}
    }


def test_a_refused_patch_is_named_in_the_api_servers_words_only_when_invalid() -> None:
    body = json.dumps({"kind": "Status", "message": "metadata.annotations: Invalid value"})
    invalid = client.ApiException(status=422, reason="Unprocessable Entity")
    invalid.body = body
    forbidden = client.ApiException(status=403, reason="Forbidden")
    forbidden.body = body
    assert refusal_detail(invalid) == "metadata.annotations: Invalid value"
    assert refusal_detail(forbidden) == ""
    garbled = client.ApiException(status=422)
    garbled.body = "<html>"
    assert refusal_detail(garbled) == ""
