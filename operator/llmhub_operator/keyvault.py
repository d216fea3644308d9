"""Key Vault as the credential source: one credential and client per vault, errors sorted here."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.transport import AioHttpTransport
from azure.keyvault.secrets import KeyVaultSecret
from azure.keyvault.secrets.aio import SecretClient

from llmhub_operator import azure_auth
from llmhub_operator.errors import (
    SourceAuthError,
    SourceDisabled,
    SourceError,
    SourceNotFound,
    SourceThrottled,
    SourceUnavailable,
)
from llmhub_operator.metrics import KEYVAULT_REQUEST_SECONDS

log = logging.getLogger(__name__)

CA_BUNDLE_ENV = "LLMHUB_AZURE_CA_BUNDLE"
VERIFY_CHALLENGE_ENV = "LLMHUB_AZURE_VERIFY_CHALLENGE_RESOURCE"
TIMEOUT_ENV = "LLMHUB_AZURE_TIMEOUT_SECONDS"
_FALSE = {"0", "false", "no", "off"}
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")


@dataclass(frozen=True)
class FetchedSecret:
    """One Key Vault secret version; ``value`` stays out of repr so it never reaches a log."""

    value: str = field(repr=False)
    version: str
    created: datetime
    updated: datetime | None
    expires: datetime | None
    enabled: bool


@dataclass
class _Vault:
    credential: AsyncTokenCredential
    client: SecretClient
    # Until one read succeeded, reads go one at a time: a burst of first reads (operator start
    # with many LLMProviders) then costs one challenge and one token request, not one per read.
    warm: bool = False
    warming: asyncio.Lock = field(default_factory=asyncio.Lock)


MAX_CONCURRENT_READS = 16
# A black-holed or slow vault holds at most this many of the slots above, so it only slows its
# own LLMProviders; and at most this many vault clients stay open (least recently used go).
MAX_READS_PER_VAULT = 8
MAX_VAULT_CLIENTS = 64


class Identity(Protocol):
    """Whom to read a vault as, when not the operator itself (identity.NamespaceIdentity)."""

    @property
    def key(self) -> tuple[str, ...]: ...

    def credential(
        self, *, connection_verify: str | bool, timeout_s: float
    ) -> AsyncTokenCredential: ...


class KeyVaultSource:
    """Reads secrets over Workload Identity; callers see only ``FetchedSecret`` or a SourceError."""

    def __init__(
        self,
        *,
        credential_factory: azure_auth.CredentialFactory = azure_auth.make_credential,
        connection_verify: str | bool = True,
        verify_challenge_resource: bool = True,
        timeout_s: float = 10.0,
    ) -> None:
        self._credential_factory = credential_factory
        self._connection_verify = connection_verify
        self._verify_challenge_resource = verify_challenge_resource
        self._timeout_s = timeout_s
        self._vaults: OrderedDict[tuple[object, ...], _Vault] = OrderedDict()
        self._per_host: dict[str, asyncio.Semaphore] = {}
        self._ssl: ssl.SSLContext | None = None
        # Hundreds of LLMProviders start at once; unbounded, their reads queue in this event loop
        # and time out before they are even sent. The timeout starts once a slot is taken.
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_READS)
        _quiet_azure_request_logging()

    @property
    def connection_verify(self) -> str | bool:
        """The CA bundle path (or True for the system store) both pipelines trust."""
        return self._connection_verify

    @property
    def verify_challenge_resource(self) -> bool:
        return self._verify_challenge_resource

    @property
    def timeout_s(self) -> float:
        """Upper bound of one ``fetch``, token acquisition included."""
        return self._timeout_s

    @classmethod
    def from_env(cls) -> KeyVaultSource:
        """Configure from LLMHUB_AZURE_CA_BUNDLE, _VERIFY_CHALLENGE_RESOURCE, _TIMEOUT_SECONDS."""
        ca_bundle = os.environ.get(CA_BUNDLE_ENV) or None
        verify_challenge = os.environ.get(VERIFY_CHALLENGE_ENV, "true").strip().lower()
        return cls(
            connection_verify=ca_bundle if ca_bundle else True,
            verify_challenge_resource=verify_challenge not in _FALSE,
            timeout_s=float(os.environ.get(TIMEOUT_ENV) or 10.0),
        )

    async def fetch(
        self,
        vault_url: str,
        name: str,
        version: str | None = None,
        identity: Identity | None = None,
    ) -> FetchedSecret:
        """The latest (or pinned) version of ``name``, within ``timeout_s`` in total; read as
        ``identity`` when given, else as the operator's own Workload Identity."""
        started = time.perf_counter()
        outcome = "unexpected"  # stays so only if something escaped the mapping (or cancelled)
        try:
            fetched = await self._fetch(vault_url, name, version, identity)
            outcome = "ok"
            return fetched
        except SourceError as exc:
            outcome = exc.reason
            raise
        finally:
            KEYVAULT_REQUEST_SECONDS.labels(outcome=outcome).observe(time.perf_counter() - started)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=str(self._connection_verify))
        return self._ssl

    async def aclose(self) -> None:
        """Close every client and credential; the source may be reused afterwards."""
        vaults, self._vaults = list(self._vaults.values()), OrderedDict()
        for vault in vaults:
            await vault.client.close()
            await vault.credential.close()

    async def _fetch(
        self, vault_url: str, name: str, version: str | None, identity: Identity | None
    ) -> FetchedSecret:
        where = _describe(vault_url, name, version)
        host = urlsplit(vault_url).netloc.lower()
        per_host = self._per_host.setdefault(host, asyncio.Semaphore(MAX_READS_PER_VAULT))
        try:
            async with per_host, self._slots, asyncio.timeout(self._timeout_s):
                vault = await self._vault(vault_url, identity)
                secret = await self._first_or_plain_get(vault, name, version)
        except TimeoutError:
            raise SourceUnavailable(
                f"Key Vault did not answer for {where} within {self._timeout_s:g}s",
                reason="timeout",
            ) from None
        props = secret.properties
        if secret.value is None or props.version is None:
            raise SourceNotFound(f"Key Vault returned no value for {where}", reason="empty")
        created = props.created_on or props.updated_on or datetime.now(UTC)
        return FetchedSecret(
            value=secret.value,
            version=props.version,
            created=created,
            updated=props.updated_on,
            expires=props.expires_on,
            enabled=props.enabled is not False,
        )

    async def _first_or_plain_get(
        self, vault: _Vault, name: str, version: str | None
    ) -> KeyVaultSecret:
        """Concurrent reads wait only while the vault's first read is in flight."""
        where = _describe(vault.client.vault_url, name, version)
        if not vault.warm:
            async with vault.warming:
                if not vault.warm:
                    secret = await _get(vault, name, version, where)
                    vault.warm = True
                    return secret
        return await _get(vault, name, version, where)

    async def _vault(self, vault_url: str, identity: Identity | None) -> _Vault:
        """One client per (vault, identity), least recently used closed beyond the bound."""
        key = (vault_url.rstrip("/").lower(), *(identity.key if identity is not None else ()))
        vault = self._vaults.get(key)
        if vault is not None:
            self._vaults.move_to_end(key)
            return vault
        options = {"connection_verify": self._connection_verify, "timeout_s": self._timeout_s}
        if identity is not None:
            credential = identity.credential(**options)  # type: ignore[arg-type]
        else:
            try:
                credential = self._credential_factory(**options)  # type: ignore[arg-type]
            except azure_auth.WorkloadIdentityMissing as exc:
                raise SourceAuthError(str(exc), reason="no_workload_identity") from None
        pipeline = azure_auth.pipeline_options(**options)  # type: ignore[arg-type]
        if isinstance(self._connection_verify, str):
            # azure-core builds a new SSLContext per request from a CA path, so aiohttp never
            # reuses a connection: a TLS handshake and a 256 KiB buffer per read. One context
            # on the connector, and requests that just ask for verification, reuse them.
            pipeline["connection_verify"] = True
            pipeline["transport"] = AioHttpTransport(
                session=aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(ssl=self._ssl_context())
                ),
                session_owner=True,
            )
        client = SecretClient(
            vault_url,
            credential,
            verify_challenge_resource=self._verify_challenge_resource,
            **pipeline,
        )
        vault = self._vaults[key] = _Vault(credential, client)
        while len(self._vaults) > MAX_VAULT_CLIENTS:
            _, old = self._vaults.popitem(last=False)
            await old.client.close()
            await old.credential.close()
        return vault


async def _get(vault: _Vault, name: str, version: str | None, where: str) -> KeyVaultSecret:
    with _map_azure_errors(where):
        return await vault.client.get_secret(name, version or None)


def _quiet_azure_request_logging() -> None:
    """azure-core logs every request and response at INFO; keep that out of operator logs."""
    http_log = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
    if http_log.level == logging.NOTSET:
        http_log.setLevel(logging.WARNING)


def _describe(vault_url: str, name: str, version: str | None) -> str:
    host = urlsplit(vault_url).netloc or vault_url
    return f"secret '{name}'" + (f" version {version}" if version else "") + f" in {host}"


@contextmanager
def _map_azure_errors(where: str) -> Iterator[None]:
    """Translate azure-core exceptions into the SourceError tree, chaining the original."""
    try:
        yield
    except ResourceNotFoundError as exc:
        raise SourceNotFound(f"Key Vault has no {where}", status=404) from exc
    except ClientAuthenticationError as exc:
        status = exc.status_code if exc.response is not None else None
        raise SourceAuthError(_auth_message(where, status), status=status) from exc
    except HttpResponseError as exc:
        raise _from_status(exc, where) from exc
    except (ServiceRequestTimeoutError, ServiceResponseTimeoutError) as exc:
        raise SourceUnavailable(f"timed out reading {where}", reason="timeout") from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        kind = type(exc.inner_exception or exc).__name__
        raise SourceUnavailable(f"could not reach Key Vault for {where} ({kind})") from exc
    except AzureError as exc:
        raise SourceUnavailable(f"Azure SDK failed reading {where} ({type(exc).__name__})") from exc
    except OSError as exc:
        raise SourceUnavailable(f"network error reading {where} ({type(exc).__name__})") from exc
    except ValueError as exc:
        # The SDK refuses a challenge whose resource does not match the vault's domain.
        raise SourceError(
            f"Key Vault's auth challenge for {where} does not match the vault URL; use the "
            "vault's own https://<name>.vault.azure.net URL",
            reason="challenge",
            permanent=True,
        ) from exc


def _from_status(exc: HttpResponseError, where: str) -> SourceError:
    status = exc.status_code or 0
    code = exc.error.code if exc.error is not None else None
    if status == 403 and _inner_code(exc) == "SecretDisabled":
        return SourceDisabled(f"Key Vault {where} is disabled", status=status)
    if status in (401, 403):
        return SourceAuthError(_auth_message(where, status), status=status)
    if status == 404:
        return SourceNotFound(f"Key Vault has no {where}", status=status)
    if status == 429:
        retry_after = _retry_after(exc)
        hint = f"; retry after {retry_after:g}s" if retry_after is not None else ""
        return SourceThrottled(
            f"Key Vault throttled the read of {where}{hint}", retry_after=retry_after, status=status
        )
    if status >= 500 or status == 408:
        return SourceUnavailable(
            f"Key Vault answered HTTP {status} for {where}",
            retry_after=_retry_after(exc),
            status=status,
        )
    # An error code only if it looks like one: the answer must not carry free text into status.
    detail = f" ({code})" if code and _CODE.fullmatch(code) else ""
    return SourceError(
        f"Key Vault rejected the read of {where} with HTTP {status}{detail}",
        reason="rejected",
        permanent=True,
        status=status,
    )


def _auth_message(where: str, status: int | None) -> str:
    answer = f"HTTP {status}" if status else "no token"
    client_id = os.environ.get("AZURE_CLIENT_ID") or "<AZURE_CLIENT_ID unset>"
    return (
        f"Key Vault denied access to {where} ({answer}). Check that managed identity {client_id} "
        f"has a federated credential with subject {azure_auth.workload_subject()} and audience "
        "api://AzureADTokenExchange, and the role 'Key Vault Secrets User' on the vault."
    )


def _inner_code(exc: HttpResponseError) -> str | None:
    inner = getattr(exc.error, "innererror", None) if exc.error is not None else None
    code = inner.get("code") if isinstance(inner, dict) else None
    return code if isinstance(code, str) else None


def _retry_after(exc: HttpResponseError) -> float | None:
    """Seconds from Retry-After (delta or HTTP date) or x-ms-retry-after-ms, if present."""
    headers: Mapping[str, str] = getattr(exc.response, "headers", None) or {}
    millis = headers.get("x-ms-retry-after-ms") or headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    raw = headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
