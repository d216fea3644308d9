"""Writing a credential to Key Vault as a new secret version, with expiry and tags.

Errors come back as ``PushError`` with a sentence that says what to do; nothing here prints,
logs or raises the value. The CA bundle and challenge switches exist for stand-in vaults (the
project's fake Key Vault), never for a real one.
"""

from __future__ import annotations

import getpass
import logging
import socket
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import CredentialUnavailableError, DefaultAzureCredential
from azure.keyvault.secrets import SecretClient

from llmhub_cli.credentials import Credential
from llmhub_common.tokens import format_rfc3339


class PushError(Exception):
    """A push that did not happen, with the reason in words an admin can act on."""


@dataclass(frozen=True)
class Pushed:
    name: str
    version: str
    expires_at: datetime


@dataclass(frozen=True)
class Connection:
    vault_url: str
    ca_bundle: str | None = None  # stand-in vaults only
    verify_challenge_resource: bool = True  # False for stand-in vaults only
    timeout_s: float = 20.0


def check_vault_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise PushError(f"--vault-url must be https://<vault-name>.vault.azure.net, not {url!r}")
    return url.rstrip("/")


def push(
    conn: Connection,
    *,
    secret_name: str,
    credential: Credential,
    expires_at: datetime,
    issued_at: datetime,
    pushed_by: str | None = None,
) -> Pushed:
    """Set a new version of ``secret_name``; the old versions stay (Key Vault keeps them)."""
    vault_url = check_vault_url(conn.vault_url)
    logging.getLogger("azure").setLevel(logging.ERROR)  # its request logs add nothing here
    verify: str | bool = conn.ca_bundle or True
    transport = {
        "connection_verify": verify,
        "connection_timeout": conn.timeout_s,
        "read_timeout": conn.timeout_s,
        "retry_total": 1,
        "retry_backoff_factor": 0.2,
    }
    azure_credential = DefaultAzureCredential(
        exclude_interactive_browser_credential=True, **transport
    )
    client = SecretClient(
        vault_url,
        azure_credential,
        verify_challenge_resource=conn.verify_challenge_resource,
        **transport,
    )
    tags = {
        "kind": credential.kind,
        "issued-at": format_rfc3339(issued_at),
        "pushed-by": pushed_by or default_pusher(),
        "managed-by": "llm-mcp-hub-cli",
    }
    try:
        with client, azure_credential:
            secret = client.set_secret(
                secret_name,
                credential.value,
                expires_on=expires_at,
                content_type=credential.content_type,
                tags=tags,
            )
    except (CredentialUnavailableError, ClientAuthenticationError) as exc:
        raise PushError(_auth_message(exc, vault_url)) from None
    except HttpResponseError as exc:
        raise PushError(_http_message(exc, vault_url, secret_name)) from None
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise PushError(
            f"cannot reach Key Vault {vault_url} ({_reason(exc)}): check the vault name "
            "(https://<vault-name>.vault.azure.net) and that this network may reach it"
        ) from None
    return Pushed(secret_name, secret.properties.version or "", expires_at)


def default_pusher() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _auth_message(exc: Exception, vault_url: str) -> str:
    if isinstance(exc, HttpResponseError) and exc.status_code in (401, 403):
        return _http_message(exc, vault_url, "")
    return (
        f"could not get an Azure token for {vault_url}: sign in with `az login` (or set a "
        f"workload/managed identity). {type(exc).__name__}"
    )


def _http_message(exc: HttpResponseError, vault_url: str, name: str) -> str:
    status = exc.status_code
    code = getattr(exc.error, "code", None) or ""
    if status == 403:
        return (
            f"access denied by {vault_url} ({code or 'Forbidden'}): your identity may not set "
            f"secrets there; it needs the 'Key Vault Secrets Officer' role on the vault (RBAC) "
            f"or a 'set' secret permission (access policy)"
        )
    if status == 401:
        return f"{vault_url} refused the Azure token (401): `az login` to the vault's tenant"
    if status == 404:
        return f"{vault_url} answered 404 for secret {name!r}: check the vault URL"
    if status == 409:
        return (
            f"secret {name!r} is deleted but not purged in {vault_url}: recover or purge it "
            "first (`az keyvault secret recover`)"
        )
    if status == 429:
        return f"{vault_url} is throttling requests (429): try again in a minute"
    return f"{vault_url} refused the write: HTTP {status} {code}".rstrip()


def _reason(exc: Exception) -> str:
    text = str(exc).lower()
    if "name or service not known" in text or "nodename nor servname" in text:
        return "no such host"
    if "refused" in text:
        return "connection refused"
    if "certificate" in text or "ssl" in text:
        return "TLS certificate not trusted"
    if "timed out" in text or "timeout" in text:
        return "timed out"
    return type(exc).__name__
