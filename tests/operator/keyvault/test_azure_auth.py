"""Credential choice: Workload Identity exactly when AKS injected its env, else the chain."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.identity.aio import DefaultAzureCredential, WorkloadIdentityCredential

from llmhub_operator import azure_auth
from llmhub_operator.errors import SourceAuthError
from llmhub_operator.keyvault import KeyVaultSource
from tests.fakes.fake_azure import DEFAULT_SUBJECT


async def test_workload_identity_when_its_env_is_complete(azure_env: dict[str, str]) -> None:
    credential = azure_auth.make_credential(connection_verify=True, timeout_s=1.0)
    try:
        assert isinstance(credential, WorkloadIdentityCredential)
    finally:
        await credential.close()


async def test_outside_a_pod_the_default_chain_without_managed_identity(
    azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A developer's machine: ``az login`` works; the VM's managed identity is never tried."""
    monkeypatch.delenv("AZURE_FEDERATED_TOKEN_FILE")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    credential = azure_auth.make_credential(connection_verify=True, timeout_s=1.0)
    try:
        assert isinstance(credential, DefaultAzureCredential)
        kinds = {type(c).__name__ for c in credential.credentials}
        assert "ManagedIdentityCredential" not in kinds
        assert "AzureCliCredential" in kinds
    finally:
        await credential.close()


async def test_in_a_pod_without_workload_identity_no_fallback_to_the_node_identity(
    azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_CLIENT_ID")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with pytest.raises(azure_auth.WorkloadIdentityMissing, match="AZURE_CLIENT_ID"):
        azure_auth.make_credential(connection_verify=True, timeout_s=1.0)
    source = KeyVaultSource(connection_verify=False, verify_challenge_resource=False)
    with pytest.raises(SourceAuthError) as denied:  # said in status, never an IMDS request
        await source.fetch("https://kv.vault.azure.net", "claude-token")
    assert denied.value.reason == "no_workload_identity"
    assert "node's managed identity" in denied.value.message


def test_subject_comes_from_the_projected_token(azure_env: dict[str, str]) -> None:
    assert azure_auth.workload_subject() == DEFAULT_SUBJECT


def test_subject_falls_back_to_env_then_placeholder(tmp_path: Path) -> None:
    opaque = tmp_path / "token"
    opaque.write_text("not-a-jwt")
    env = {"AZURE_FEDERATED_TOKEN_FILE": str(opaque)}

    assert azure_auth.workload_subject(env) == azure_auth.SUBJECT_PLACEHOLDER
    env |= {"POD_NAMESPACE": "hub", "LLMHUB_SERVICE_ACCOUNT": "op"}
    assert azure_auth.workload_subject(env) == "system:serviceaccount:hub:op"
