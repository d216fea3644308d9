"""The contract between operator and gateway (DESIGN.md): one place for every shared name."""

from __future__ import annotations

from typing import Final, Literal

API_GROUP: Final = "llm-mcp-hub.io"
API_VERSION: Final = "v1alpha1"
KIND: Final = "LLMProvider"
PLURAL: Final = "llmproviders"

ProviderName = Literal["claude", "gemini"]
PROVIDERS: Final[tuple[ProviderName, ...]] = ("claude", "gemini")

# Keys of the Secret the operator writes, per provider.
CLAUDE_TOKEN_KEY: Final = "CLAUDE_CODE_OAUTH_TOKEN"
GEMINI_CREDS_KEY: Final = "oauth_creds.json"
EXPIRES_AT_KEY: Final = "expires_at"
# Gemini only, present when spec.gemini.projectId is set: the Code Assist account's project. The
# gateway reads it from the mounted Secret on every call, so a change needs no roll.
GEMINI_PROJECT_KEY: Final = "GOOGLE_CLOUD_PROJECT"
CREDENTIAL_KEY: Final[dict[str, str]] = {"claude": CLAUDE_TOKEN_KEY, "gemini": GEMINI_CREDS_KEY}

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "llm-mcp-hub-operator"

# Annotations on the Secret: where the value came from, and what it hashes to (never the value).
SOURCE_VERSION_ANNOTATION: Final = f"{API_GROUP}/source-version"
CONTENT_HASH_ANNOTATION: Final = f"{API_GROUP}/content-hash"
EXPIRES_AT_ANNOTATION: Final = f"{API_GROUP}/expires-at"

# Gateway environment (DESIGN.md) and the default mount of the Gemini Secret.
DEFAULT_GEMINI_AUTH_PATH: Final = "/mnt/auth/gemini/oauth_creds.json"
GATEWAY_PORT: Final = 8000
# The gateway's admin listener: /metrics and /health/tokens (the operator and Prometheus read
# them there); the callers' Service never exposes it.
GATEWAY_ADMIN_PORT: Final = 9090


def rollout_annotation(provider_resource_name: str) -> str:
    """Pod-template annotation whose change rolls the gateway for one LLMProvider."""
    return f"{API_GROUP}/{provider_resource_name}-hash"


def secret_uid_annotation(provider_resource_name: str) -> str:
    """Pod-template annotation with the uid of the Secret the pods were started with."""
    return f"{API_GROUP}/{provider_resource_name}-secret-uid"


def default_target_secret(provider_resource_name: str) -> str:
    return f"{provider_resource_name}-credentials"
