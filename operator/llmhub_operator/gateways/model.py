"""The LLMGateway spec and the LLMProviders it serves, as typed, frozen models.

The CRD's schema and CEL rules reject most bad specs at admission; this module re-checks what a
schema cannot (which LLMProviders a selector finds) and fills the CRD's defaults, so a spec
written before a default existed renders the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmhub_common.contract import API_GROUP, PROVIDERS, ProviderName, default_target_secret
from llmhub_operator.model import InvalidSpec

KIND = "LLMGateway"
PLURAL = "llmgateways"
AuthMode = Literal["entra", "kubernetes", "static", "none"]


class GatewaySettings(BaseSettings):
    """Operator settings for LLMGateways (the chart sets the image to its own release's)."""

    model_config = SettingsConfigDict(env_prefix="LLMHUB_LLMGATEWAYS_", env_ignore_empty=True)

    # Off: LLMGateways are not watched and need no RBAC (chart: operator.llmGateways.enabled).
    enabled: bool = True
    image: str = "ghcr.io/llm-mcp-hub/llm-mcp-hub-gateway:latest"
    redis_image: str = "docker.io/library/redis:7.4.2-alpine"
    # Every LLMGateway is re-applied this often: a hand-edit of an owned object is reverted.
    resync_seconds: float = Field(default=60.0, gt=0)
    cluster_domain: str = "cluster.local"


class _Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class Providers(_Spec):
    names: tuple[str, ...] = ()
    selector: Mapping[str, Mapping[str, str]] | None = None


class Entra(_Spec):
    authority: str = "https://login.microsoftonline.com"
    tenants: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    domains: Mapping[str, str] = Field(default_factory=dict)


class KubernetesAuth(_Spec):
    audience: str = "llm-mcp-hub-gateway"
    allowed_service_accounts: tuple[str, ...] = ()


class StaticKeys(_Spec):
    secret_name: str
    key: str = "keys"


class Auth(_Spec):
    modes: tuple[AuthMode, ...] = ()
    entra: Entra = Entra()
    kubernetes: KubernetesAuth = KubernetesAuth()
    static_keys: StaticKeys | None = None
    admin_callers: tuple[str, ...] = ()


class Limits(_Spec):
    caller_requests_per_minute: int = Field(default=0, ge=0)
    caller_concurrent_turns: int = Field(default=0, ge=0)
    caller_daily_tokens: int = Field(default=0, ge=0)
    subscription_requests_per_minute: int = Field(default=0, ge=0)
    subscription_concurrent_turns: int = Field(default=0, ge=0)


class RedisSecret(_Spec):
    name: str
    key: str = "url"


class Redis(_Spec):
    managed: bool = False
    existing_secret: RedisSecret | None = None


class Exposure(_Spec):
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    ingress_host: str = ""
    ingress_class_name: str = ""
    tls_secret_name: str = ""


class NetworkPolicy(_Spec):
    enabled: bool = True
    allowed_namespaces: tuple[Mapping[str, str], ...] = ()


class Pdb(_Spec):
    enabled: bool = True
    min_available: int = Field(default=1, ge=0)


class Hpa(_Spec):
    enabled: bool = False
    min_replicas: int = Field(default=2, ge=1)
    max_replicas: int = Field(default=5, ge=1)
    target_cpu_utilization_percentage: int = Field(
        default=80, ge=1, le=100, alias="targetCPUUtilizationPercentage"
    )


# The gateway's built-in recognizers (its masking/recognizers.py), as both CRDs enumerate them;
# tests/operator/test_gateway_masking.py keeps the three lists equal.
RECOGNIZERS = (
    "aws_arn", "azure_resource_id", "aws_ec2_instance", "aws_ebs_volume", "aws_ebs_snapshot",
    "aws_ami", "aws_vpc", "aws_subnet", "aws_security_group", "aws_network_id", "aws_account_id",
    "aws_s3_bucket", "aws_rds_endpoint", "azure_subscription_id", "azure_tenant_id",
    "azure_key_vault", "azure_hostname", "k8s_service", "internal_hostname", "private_ip", "email",
)  # fmt: skip


class Masking(_Spec):
    """The gateway's MASKING_* (docs/gateway.md "Masking"); recognizer names are the CRD's enum."""

    enabled: bool = False
    recognizers: tuple[str, ...] = ()  # empty: all
    extra_patterns: Mapping[str, str] = Field(default_factory=dict)

    @field_validator("extra_patterns")
    @classmethod
    def _compiles(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        """What the gateway refuses at start (a built-in's name, ``all``, a regex that does not
        compile or matches "") would crash-loop every new pod; here it stalls the LLMGateway."""
        for name, pattern in value.items():
            if name in RECOGNIZERS or name == "all":
                raise ValueError(f"{name}: is a built-in recognizer's name")
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{name}: not a valid regex: {exc}") from None
            if compiled.match(""):
                raise ValueError(f"{name}: matches the empty string")
        return value


class GatewaySpec(_Spec):
    replicas: int = Field(default=2, ge=0)
    image: str = ""
    resources: Mapping[str, Any] = Field(default_factory=dict)
    providers: Providers
    auth: Auth = Auth()
    limits: Limits = Limits()
    redis: Redis | None = None
    exposure: Exposure = Exposure()
    network_policy: NetworkPolicy = NetworkPolicy()
    pdb: Pdb = Pdb()
    hpa: Hpa = Hpa()
    masking: Masking = Masking()


def parse_gateway(spec: Mapping[str, Any]) -> GatewaySpec:
    """The spec as a GatewaySpec; InvalidSpec names the first wrong field."""
    try:
        return GatewaySpec.model_validate(spec)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise InvalidSpec(f"spec.{where}: {error['msg']}") from None


@dataclass(frozen=True, slots=True)
class ServedProvider:
    """What a gateway needs of one LLMProvider it serves (never the credential itself)."""

    name: str
    provider: ProviderName
    secret_name: str
    model: str | None
    content_hash: str | None  # status.contentHash: its change rolls the gateway
    token: str | None  # status.token.status
    expires_at: str | None
    # spec.masking as the gateway's MASKING_PROVIDERS value: "off", "all" or a comma list;
    # None follows the gateway's own masking.
    masking: str | None = None


def served_providers(
    gateway: GatewaySpec, listed: Sequence[Mapping[str, Any]]
) -> list[ServedProvider]:
    """The LLMProviders (of the gateway's namespace, as listed) that the gateway serves.

    A gateway pod runs one CLI per provider kind, so two of one kind is a spec a person must fix;
    a named LLMProvider that does not exist (yet) is too.
    """
    by_name = {str(p["metadata"]["name"]): p for p in listed}
    if gateway.providers.names:
        missing = [n for n in gateway.providers.names if n not in by_name]
        if missing:
            raise InvalidSpec(f"spec.providers.names: no LLMProvider {', '.join(missing)}")
        chosen = [by_name[n] for n in gateway.providers.names]
    else:
        wanted = dict((gateway.providers.selector or {}).get("matchLabels") or {})
        chosen = [
            p
            for name, p in sorted(by_name.items())
            if wanted.items() <= dict(p["metadata"].get("labels") or {}).items()
        ]
        if not chosen:
            raise InvalidSpec("spec.providers.selector matches no LLMProvider")
    served = [_served(p) for p in chosen]
    kinds = [s.provider for s in served]
    for kind in PROVIDERS:
        if kinds.count(kind) > 1:
            names = ", ".join(s.name for s in served if s.provider == kind)
            raise InvalidSpec(f"spec.providers: one {kind} LLMProvider per gateway, not {names}")
    return served


def _served(body: Mapping[str, Any]) -> ServedProvider:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    name = str(body["metadata"]["name"])
    token = status.get("token") or {}
    secret = (spec.get("target") or {}).get("secretName") or default_target_secret(name)
    kind = spec.get("provider")
    if kind not in PROVIDERS:
        raise InvalidSpec(f"LLMProvider {name} has no valid spec.provider")
    return ServedProvider(
        name=name,
        provider=kind,
        secret_name=secret,
        model=spec.get("model") or None,
        content_hash=status.get("contentHash") or None,
        token=token.get("status"),
        expires_at=token.get("expiresAt"),
        masking=_masking_override(spec.get("masking")),
    )


def _masking_override(masking: Any) -> str | None:
    if not isinstance(masking, Mapping):
        return None
    if not masking.get("enabled"):
        return "off"
    return ",".join(masking.get("recognizers") or ()) or "all"


GATEWAY_LABEL = f"{API_GROUP}/gateway"  # on every object of a gateway: its LLMGateway's name
