"""Which Azure credential the operator uses: Workload Identity on AKS, the default chain else."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from typing import Any, Protocol

from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import DefaultAzureCredential, WorkloadIdentityCredential

WORKLOAD_IDENTITY_ENV = ("AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID")
SUBJECT_PLACEHOLDER = "system:serviceaccount:<namespace>:<serviceaccount>"


class CredentialFactory(Protocol):
    """Builds one async credential; the adapter calls it once per vault."""

    def __call__(self, *, connection_verify: str | bool, timeout_s: float) -> AsyncTokenCredential:
        """Return a fresh credential whose pipeline trusts ``connection_verify``."""
        ...


def pipeline_options(*, connection_verify: str | bool, timeout_s: float) -> dict[str, Any]:
    """Transport and retry settings shared by the credential and the SecretClient.

    Retries stay small: the operator has its own backoff, and status retries are off so a 429 is
    surfaced (with its Retry-After) instead of being slept through inside the SDK.
    """
    return {
        "connection_verify": connection_verify,
        "connection_timeout": timeout_s,
        "read_timeout": timeout_s,
        "retry_total": 1,
        "retry_connect": 1,
        "retry_read": 0,
        "retry_status": 0,
        "retry_backoff_factor": 0.2,
    }


def uses_workload_identity(env: Mapping[str, str] | None = None) -> bool:
    """True when the AKS Workload Identity webhook injected its three variables."""
    env = os.environ if env is None else env
    return all(env.get(name) for name in WORKLOAD_IDENTITY_ENV)


class WorkloadIdentityMissing(RuntimeError):
    """In a pod without the Workload Identity environment: we refuse the node's identity."""


def make_credential(*, connection_verify: str | bool, timeout_s: float) -> AsyncTokenCredential:
    """Workload Identity when its env is present (explicitly, to fail loudly).

    In a pod without it, no fallback: the default chain would try IMDS and read vaults as the
    node's managed identity, which every pod on the node shares. Outside a pod (a developer's
    machine) the default chain without managed identity works after ``az login``.
    """
    options = pipeline_options(connection_verify=connection_verify, timeout_s=timeout_s)
    if uses_workload_identity():
        authority = os.environ.get("AZURE_AUTHORITY_HOST")
        if authority:
            options["authority"] = authority
        return WorkloadIdentityCredential(
            tenant_id=os.environ["AZURE_TENANT_ID"],
            client_id=os.environ["AZURE_CLIENT_ID"],
            token_file_path=os.environ["AZURE_FEDERATED_TOKEN_FILE"],
            **options,
        )
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        missing = [name for name in WORKLOAD_IDENTITY_ENV if not os.environ.get(name)]
        raise WorkloadIdentityMissing(
            "Workload Identity is not configured in this pod (missing "
            f"{', '.join(missing)}): label the pod azure.workload.identity/use=true with an "
            "annotated ServiceAccount, or enable the chart's token projection; the operator "
            "does not fall back to the node's managed identity"
        )
    return DefaultAzureCredential(exclude_managed_identity_credential=True, **options)


def workload_subject(env: Mapping[str, str] | None = None) -> str:
    """The federated credential subject Entra sees, for error messages (never the token itself).

    Read from the ``sub`` claim of the projected service-account token when readable, else built
    from POD_NAMESPACE and LLMHUB_SERVICE_ACCOUNT, else a placeholder.
    """
    env = os.environ if env is None else env
    subject = _token_subject(env.get("AZURE_FEDERATED_TOKEN_FILE"))
    if subject:
        return subject
    namespace, account = env.get("POD_NAMESPACE"), env.get("LLMHUB_SERVICE_ACCOUNT")
    if namespace and account:
        return f"system:serviceaccount:{namespace}:{account}"
    return SUBJECT_PLACEHOLDER


def _token_subject(path: str | None) -> str | None:
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            parts = handle.read().strip().split(".")
        if len(parts) != 3:
            return None
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (OSError, ValueError, binascii.Error):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) and sub.startswith("system:serviceaccount:") else None
