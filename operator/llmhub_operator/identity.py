"""Per-namespace Workload Identity: read Key Vault as the LLMProvider's own ServiceAccount.

External Secrets Operator's namespaced SecretStores do the same: each team federates its own
managed identity with a ServiceAccount of its namespace and grants it its own vault, so the
operator's identity needs no access to team vaults. The operator asks the TokenRequest API for a
short-lived token of that ServiceAccount (audience ``api://AzureADTokenExchange``) and exchanges
it with Entra as the client id the ServiceAccount's annotation names.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, cast

from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import ClientAssertionCredential
from kubernetes_asyncio import client

from llmhub_common.logging import secrets
from llmhub_operator import azure_auth

CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
TENANT_ID_ANNOTATION = "azure.workload.identity/tenant-id"
AUDIENCE = "api://AzureADTokenExchange"
TOKEN_SECONDS = 600  # the API server's minimum; refreshed well before it runs out
REFRESH_BEFORE_S = 180
MAX_IDENTITIES = 256  # bounded: a namespace full of ServiceAccounts cannot grow our memory
# Never a token of a system account, whatever RBAC allows: one of kube-system's controllers can
# escalate ClusterRoles (cluster-admin).
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})


class IdentityError(Exception):
    """The ServiceAccount cannot be used; ``reason`` is a condition reason (never retried hot)."""

    def __init__(self, reason: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.reason, self.message, self.transient = reason, message, transient


def not_granted(namespace: str, name: str) -> IdentityError:
    """The API server refused (403): the namespace has not opted in to this ServiceAccount."""
    return IdentityError(
        "ServiceAccountNotGranted",
        f"namespace {namespace} has not granted the operator ServiceAccount {name}: it needs a "
        "Role there with get on serviceaccounts and create on serviceaccounts/token for "
        f"resourceNames [{name}], bound to the operator's ServiceAccount (docs/aks.md, several "
        "teams; in the release namespace the chart value "
        "operator.keyVault.tokenRequestServiceAccounts)",
    )


@dataclass
class NamespaceIdentity:
    """One ServiceAccount's federated identity; ``key`` tells vault clients apart."""

    namespace: str
    service_account: str
    client_id: str
    tenant_id: str
    authority: str | None
    _token: str = field(default="", repr=False)
    _expires: float = 0.0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.namespace, self.service_account, self.client_id)

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def credential(
        self, *, connection_verify: str | bool, timeout_s: float
    ) -> AsyncTokenCredential:
        options = azure_auth.pipeline_options(
            connection_verify=connection_verify, timeout_s=timeout_s
        )
        if self.authority:
            options["authority"] = self.authority
        return ClientAssertionCredential(self.tenant_id, self.client_id, self._assertion, **options)

    def _assertion(self) -> str:
        """Called by azure-identity on each token request; fresh thanks to ``Identities``."""
        return self._token


class Identities:
    """Resolves and caches ServiceAccount identities; tokens come from the TokenRequest API."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._cache: OrderedDict[tuple[str, str], NamespaceIdentity] = OrderedDict()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def get(self, namespace: str, service_account: str) -> NamespaceIdentity:
        """The identity with a ServiceAccount token valid for a few more minutes."""
        if namespace in SYSTEM_NAMESPACES:
            raise IdentityError(
                "ServiceAccountNotGranted",
                f"the operator never reads Key Vault as a ServiceAccount of {namespace}: "
                "create the LLMProvider and its ServiceAccount in a namespace of the team",
            )
        key = (namespace, service_account)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            identity = await self._resolve(namespace, service_account)
            if identity._expires - time.monotonic() < REFRESH_BEFORE_S:
                identity._token, identity._expires = await self._request_token(identity)
            return identity

    def forget(self, namespace: str) -> None:
        for key in [k for k in self._cache if k[0] == namespace]:
            self._cache.pop(key, None)
            self._locks.pop(key, None)

    async def _resolve(self, namespace: str, name: str) -> NamespaceIdentity:
        """Annotations are read on every call: a changed client id takes effect at once."""
        core = client.CoreV1Api(self._api)
        try:
            account = await core.read_namespaced_service_account(name, namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                raise IdentityError(
                    "ServiceAccountNotFound",
                    f"ServiceAccount {name} does not exist in namespace {namespace}",
                ) from None
            if exc.status == 403:
                raise not_granted(namespace, name) from None
            raise IdentityError(
                "ServiceAccountUnreadable",
                f"reading ServiceAccount {namespace}/{name} failed with HTTP {exc.status}",
                transient=exc.status not in (401, 403),
            ) from None
        annotations = account.metadata.annotations or {}
        client_id = (annotations.get(CLIENT_ID_ANNOTATION) or "").strip()
        if not client_id:
            raise IdentityError(
                "IdentityNotConfigured",
                f"ServiceAccount {namespace}/{name} has no {CLIENT_ID_ANNOTATION} annotation "
                "naming the managed identity federated with it",
            )
        tenant = annotations.get(TENANT_ID_ANNOTATION) or os.environ.get("AZURE_TENANT_ID") or ""
        if not tenant.strip():
            raise IdentityError(
                "IdentityNotConfigured",
                f"no tenant for ServiceAccount {namespace}/{name}: set its {TENANT_ID_ANNOTATION} "
                "annotation or the operator's AZURE_TENANT_ID",
            )
        key = (namespace, name)
        cached = self._cache.get(key)
        if cached is not None and (cached.client_id, cached.tenant_id) == (client_id, tenant):
            self._cache.move_to_end(key)
            return cached
        identity = NamespaceIdentity(
            namespace, name, client_id, tenant.strip(), os.environ.get("AZURE_AUTHORITY_HOST")
        )
        self._cache[key] = identity
        while len(self._cache) > MAX_IDENTITIES:
            old, _ = self._cache.popitem(last=False)
            self._locks.pop(old, None)
        return identity

    async def _request_token(self, identity: NamespaceIdentity) -> tuple[str, float]:
        request = {"spec": {"audiences": [AUDIENCE], "expirationSeconds": TOKEN_SECONDS}}
        core = client.CoreV1Api(self._api)
        try:
            answer = await core.create_namespaced_service_account_token(
                identity.service_account, identity.namespace, cast(Any, request)
            )
        except client.ApiException as exc:
            if exc.status == 403:  # may read the account, may not mint its token
                raise not_granted(identity.namespace, identity.service_account) from None
            raise IdentityError(
                "TokenRequestFailed",
                f"the TokenRequest for ServiceAccount {identity.namespace}/"
                f"{identity.service_account} failed with HTTP {exc.status}",
                transient=exc.status not in (401, 404),
            ) from None
        token = str(answer.status.token)
        secrets.add(token)
        expires = answer.status.expiration_timestamp.timestamp() - time.time()
        return token, time.monotonic() + min(expires, TOKEN_SECONDS)
