"""The LLMProvider spec as a typed, frozen model: everything after this module trusts its input."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmhub_common.contract import PROVIDERS, ProviderName, default_target_secret

DEFAULT_REFRESH_SECONDS = 300.0
MIN_REFRESH_SECONDS = 1.0
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_VERSION = re.compile(r"^[0-9a-fA-F]{32}$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class InvalidSpec(ValueError):
    """The spec passed the CRD schema (or had none) but cannot be served; never retried."""


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    namespace: str
    provider: ProviderName
    model: str | None
    vault_url: str
    secret_name: str
    version: str | None
    service_account: str | None  # read Key Vault as this ServiceAccount of ``namespace``
    refresh_seconds: float
    target_secret: str
    deployment: str | None
    warn_before_days: int
    max_age_days: int
    gemini_project: str | None = None  # spec.gemini.projectId (GOOGLE_CLOUD_PROJECT)


def parse_duration(text: str) -> float:
    """Go-style duration (``30s``, ``5m``, ``1h30m``) in seconds; raises InvalidSpec otherwise."""
    cleaned = text.strip()
    pos, total = 0, 0.0
    for match in _DURATION.finditer(cleaned):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not cleaned or pos != len(cleaned):
        raise InvalidSpec(f"refreshInterval {text!r} is not a duration like 30s, 5m or 1h")
    if total < MIN_REFRESH_SECONDS:
        raise InvalidSpec(f"refreshInterval {text!r} is shorter than {MIN_REFRESH_SECONDS:g}s")
    return total


def refresh_seconds(interval: object) -> float:
    """spec.refreshInterval in seconds, the default when missing or not a valid duration (for
    scheduling and metrics, which go on for an object whose spec fails)."""
    try:
        return parse_duration(interval) if isinstance(interval, str) else DEFAULT_REFRESH_SECONDS
    except InvalidSpec:
        return DEFAULT_REFRESH_SECONDS


def parse_spec(name: str, namespace: str, spec: Mapping[str, Any]) -> ProviderSpec:
    """Turn ``spec`` into a ProviderSpec, naming the first field that is wrong."""
    provider = spec.get("provider")
    if provider not in PROVIDERS:
        raise InvalidSpec(f"spec.provider must be one of {', '.join(PROVIDERS)}")
    kv = _mapping(_mapping(spec.get("source"), "spec.source").get("azureKeyVault"), "azureKeyVault")
    vault_url = _text(kv.get("vaultUrl"))
    if not vault_url.startswith("https://") or len(vault_url) <= len("https://"):
        raise InvalidSpec("spec.source.azureKeyVault.vaultUrl must be an https:// URL")
    secret_name = _text(kv.get("secretName"))
    if not secret_name:
        raise InvalidSpec("spec.source.azureKeyVault.secretName is required")
    version = _text(kv.get("version")) or None
    if version is not None and not _VERSION.match(version):
        raise InvalidSpec("spec.source.azureKeyVault.version must be empty or a 32-hex version id")
    service_account = _text(kv.get("serviceAccountName")) or None
    if service_account is not None and not _DNS_SUBDOMAIN.match(service_account):
        raise InvalidSpec("spec.source.azureKeyVault.serviceAccountName is not a valid name")
    expiry = _mapping(spec.get("expiry") or {}, "spec.expiry")
    warn = _int(expiry.get("warnBeforeDays", 3), "spec.expiry.warnBeforeDays", 0)
    max_age = _int(expiry.get("maxAgeDays", 365), "spec.expiry.maxAgeDays", 1)
    target = _mapping(spec.get("target") or {}, "spec.target")
    gateway = _mapping(spec.get("gateway") or {}, "spec.gateway")
    project = _text(_mapping(spec.get("gemini") or {}, "spec.gemini").get("projectId")) or None
    if project is not None and provider != "gemini":
        raise InvalidSpec("spec.gemini.projectId applies to provider gemini only")
    return ProviderSpec(
        name=name,
        namespace=namespace,
        provider=provider,
        model=_text(spec.get("model")) or None,
        vault_url=vault_url.rstrip("/"),
        secret_name=secret_name,
        version=version,
        service_account=service_account,
        refresh_seconds=parse_duration(_text(spec.get("refreshInterval")) or "5m"),
        target_secret=_text(target.get("secretName")) or default_target_secret(name),
        deployment=_text(gateway.get("deploymentName")) or None,
        warn_before_days=warn,
        max_age_days=max_age,
        gemini_project=project,
    )


def _mapping(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidSpec(f"{field} must be an object")
    return value


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _int(value: object, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidSpec(f"{field} must be an integer >= {minimum}")
    return value
