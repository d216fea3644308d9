"""Credential choice: Workload Identity exactly when AKS injected its env, else the chain."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.identity.aio import DefaultAzureCredential, WorkloadIdentityCredential

from llmhub_operator import azure_auth
from tests.fakes.fake_azure import DEFAULT_SUBJECT


async def test_workload_identity_when_its_env_is_complete(azure_env: dict[str, str]) -> None:
    credential = azure_auth.make_credential(connection_verify=True, timeout_s=1.0)
    try:
        assert isinstance(credential, WorkloadIdentityCredential)
    finally:
        await credential.close()


async def test_default_chain_when_a_workload_identity_variable_is_missing(
    azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_FEDERATED_TOKEN_FILE")
    credential = azure_auth.make_credential(connection_verify=True, timeout_s=1.0)
    try:
        assert isinstance(credential, DefaultAzureCredential)
    finally:
        await credential.close()


def test_subject_comes_from_the_projected_token(azure_env: dict[str, str]) -> None:
    assert azure_auth.workload_subject() == DEFAULT_SUBJECT


def test_subject_falls_back_to_env_then_placeholder(tmp_path: Path) -> None:
    opaque = tmp_path / "token"
    opaque.write_text("not-a-jwt")
    env = {"AZURE_FEDERATED_TOKEN_FILE": str(opaque)}

    assert azure_auth.workload_subject(env) == azure_auth.SUBJECT_PLACEHOLDER
    env |= {"POD_NAMESPACE": "hub", "LLMHUB_SERVICE_ACCOUNT": "op"}
    assert azure_auth.workload_subject(env) == "system:serviceaccount:hub:op"
