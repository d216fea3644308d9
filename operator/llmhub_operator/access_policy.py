"""Which vaults and secrets an LLMProvider may name: the operator must not be a confused deputy.

Whoever can create an LLMProvider could otherwise have the operator's identity read any secret
of any vault it can reach, or send a token to a host of their own. The policy is checked before
any request: a refused LLMProvider causes no token request, no challenge and no GET.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

ALLOWED_VAULTS_ENV = "LLMHUB_ALLOWED_VAULTS"
NAMESPACE_POLICY_ENV = "LLMHUB_NAMESPACE_VAULTS"
REQUIRE_IDENTITY_ENV = "LLMHUB_REQUIRE_NAMESPACE_IDENTITY"
# Azure's public and sovereign Key Vault DNS suffixes.
DEFAULT_VAULTS = (
    "*.vault.azure.net",
    "*.vault.azure.cn",
    "*.vault.usgovcloudapi.net",
    "*.vault.microsoftazure.de",
)
_TRUE = {"1", "true", "yes", "on"}


class PolicyError(ValueError):
    """The policy settings themselves are wrong: the operator refuses to start."""


@dataclass(frozen=True, slots=True)
class NamespaceRule:
    vaults: tuple[str, ...]  # host patterns; empty: the global list
    secrets: tuple[str, ...] = ("*",)  # secret-name patterns


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str  # condition reason, CamelCase
    message: str


@dataclass(frozen=True)
class AccessPolicy:
    vaults: tuple[str, ...] = DEFAULT_VAULTS
    explicit: bool = False  # vaults came from the operator's configuration, not the default
    namespaces: Mapping[str, NamespaceRule] = field(default_factory=dict)
    require_namespace_identity: bool = False
    operator_namespace: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AccessPolicy:
        env = os.environ if env is None else env
        listed = _split(env.get(ALLOWED_VAULTS_ENV, ""))
        require = env.get(REQUIRE_IDENTITY_ENV, "").strip().lower() in _TRUE
        namespace = env.get("POD_NAMESPACE", "").strip()
        if require and not namespace:
            raise PolicyError(f"{REQUIRE_IDENTITY_ENV}=true needs POD_NAMESPACE (downward API)")
        return cls(
            vaults=tuple(listed) or DEFAULT_VAULTS,
            explicit=bool(listed),
            namespaces=_namespace_rules(env.get(NAMESPACE_POLICY_ENV, "")),
            require_namespace_identity=require,
            operator_namespace=namespace,
        )

    def check(
        self, namespace: str, vault_url: str, secret_name: str, service_account: str | None
    ) -> Refusal | None:
        """None when allowed; else why not, in words for status (the host, never an answer)."""
        parts = urlsplit(vault_url)
        host, netloc = (parts.hostname or "").lower(), parts.netloc.lower()
        rule = self._rule(namespace)
        vaults = rule.vaults if rule is not None and rule.vaults else self.vaults
        if not any(_host_matches(pattern, host, netloc) for pattern in vaults):
            scope = (
                f"namespace {namespace}" if rule is not None and rule.vaults else "this operator"
            )
            return Refusal(
                "VaultNotAllowed",
                f"vault {netloc or vault_url} is not allowed for {scope}; allowed: "
                f"{', '.join(vaults)} (operator setting {ALLOWED_VAULTS_ENV} / "
                f"{NAMESPACE_POLICY_ENV})",
            )
        if rule is not None and not any(fnmatch.fnmatchcase(secret_name, p) for p in rule.secrets):
            return Refusal(
                "SecretNotAllowed",
                f"secret {secret_name} is not allowed for namespace {namespace}; allowed: "
                f"{', '.join(rule.secrets)}",
            )
        if (
            self.require_namespace_identity
            and service_account is None
            and namespace != self.operator_namespace
        ):
            return Refusal(
                "NamespaceIdentityRequired",
                "LLMProviders outside the operator's namespace must read Key Vault as their own "
                "namespace's identity: set spec.source.azureKeyVault.serviceAccountName to a "
                "ServiceAccount annotated with azure.workload.identity/client-id",
            )
        return None

    def _rule(self, namespace: str) -> NamespaceRule | None:
        if namespace in self.namespaces:
            return self.namespaces[namespace]
        for pattern, rule in self.namespaces.items():
            if fnmatch.fnmatchcase(namespace, pattern):
                return rule
        return None


def _host_matches(pattern: str, host: str, netloc: str) -> bool:
    """``*.vault.azure.net`` matches the host; a pattern with a port (``127.0.0.1:*``) the
    host and port. A leading ``*.`` never matches the bare suffix itself."""
    pattern = pattern.strip().lower()
    target = netloc if ":" in pattern else host
    return bool(target) and fnmatch.fnmatchcase(target, pattern)


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]


def _namespace_rules(text: str) -> dict[str, NamespaceRule]:
    """JSON: ``{"team-a": {"vaults": ["team-a-kv.vault.azure.net"], "secrets": ["claude-*"]}}``."""
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{NAMESPACE_POLICY_ENV} is not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"{NAMESPACE_POLICY_ENV} must be a JSON object of namespace rules")
    rules = {}
    for namespace, entry in raw.items():
        if not isinstance(entry, dict):
            raise PolicyError(f"{NAMESPACE_POLICY_ENV}[{namespace!r}] must be an object")
        vaults, secrets = entry.get("vaults", []), entry.get("secrets", ["*"])
        if not _strings(vaults) or not _strings(secrets) or not secrets:
            raise PolicyError(
                f"{NAMESPACE_POLICY_ENV}[{namespace!r}]: vaults and secrets are lists of patterns"
            )
        rules[str(namespace)] = NamespaceRule(tuple(vaults), tuple(secrets))
    return rules


def _strings(value: object) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and all(isinstance(v, str) and v.strip() for v in value)
    )
