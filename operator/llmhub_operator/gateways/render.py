"""Pure functions: an LLMGateway's spec -> the objects that make its gateway.

They follow the chart's gateway pod contract (templates/gateway-deployment.yaml): the same
arguments, ports, probes, writable emptyDirs and Pod Security ``restricted`` contexts, but each
pod mounts only the Secrets of the LLMProviders its gateway serves. Every object carries an
ownerReference to the LLMGateway, so deleting it (with the operator stopped too) deletes them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmhub_common.contract import (
    API_GROUP,
    API_VERSION,
    CLAUDE_TOKEN_KEY,
    DEFAULT_GEMINI_AUTH_PATH,
    EXPIRES_AT_KEY,
    GATEWAY_ADMIN_PORT,
    GATEWAY_PORT,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    rollout_annotation,
)
from llmhub_operator.gateways.model import (
    GATEWAY_LABEL,
    KIND,
    GatewaySettings,
    GatewaySpec,
    ServedProvider,
)

Manifest = dict[str, Any]
REDIS_PORT = 6379
STATIC_KEYS_DIR = "/etc/llmhub/static-keys"
DEFAULT_RESOURCES: Mapping[str, Any] = {
    "requests": {"cpu": "250m", "memory": "512Mi"},
    "limits": {"memory": "2Gi"},
}
EMPTY_DIR_LIMIT = "1Gi"
POD_SECURITY: Mapping[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY: Mapping[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


@dataclass(frozen=True, slots=True)
class Owner:
    """The LLMGateway whose objects these are."""

    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
        }


def render(
    owner: Owner,
    spec: GatewaySpec,
    providers: Sequence[ServedProvider],
    settings: GatewaySettings,
) -> list[Manifest]:
    """Every object of the gateway, in apply order (the ServiceAccount before its pods)."""
    objects = [
        service_account(owner),
        service(owner, spec),
        replicas_service(owner),
        deployment(owner, spec, providers, settings),
    ]
    if spec.network_policy.enabled:
        objects.append(network_policy(owner, spec))
    if spec.pdb.enabled:
        objects.append(pdb(owner, spec))
    if spec.hpa.enabled:
        objects.append(hpa(owner, spec))
    if spec.exposure.ingress_host:
        objects.append(ingress(owner, spec))
    if spec.redis is not None and spec.redis.managed:
        objects += redis_objects(owner, settings)
    return objects


def labels(owner: Owner, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "llm-mcp-hub",
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/component": component,
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        GATEWAY_LABEL: owner.name,
    }


def selector(owner: Owner, component: str) -> dict[str, str]:
    """Our own label, so no chart release's pods are ever selected by a gateway's objects."""
    return {GATEWAY_LABEL: owner.name, "app.kubernetes.io/component": component}


def redis_name(owner: Owner) -> str:
    return f"{owner.name}-redis"


def urls(owner: Owner, spec: GatewaySpec, settings: GatewaySettings) -> dict[str, str]:
    """Where callers reach the gateway: the Ingress host when named, else the Service."""
    if spec.exposure.ingress_host:
        base = f"https://{spec.exposure.ingress_host}"
    else:
        host = f"{owner.name}.{owner.namespace}.svc.{settings.cluster_domain}"
        base = f"http://{host}:{GATEWAY_PORT}"
    return {"rest": f"{base}/v1/chat", "openai": f"{base}/v1", "mcp": f"{base}/mcp"}


def _meta(owner: Owner, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels(owner, component),
        "ownerReferences": [owner.reference()],
    }


def service_account(owner: Owner) -> Manifest:
    """The gateway's own identity: no RBAC binding, no token unless kubernetes auth needs one."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(owner, owner.name, "gateway"),
        "automountServiceAccountToken": False,
    }


def service(owner: Owner, spec: GatewaySpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(owner, owner.name, "gateway"),
        "spec": {
            "type": spec.exposure.service_type,
            "selector": selector(owner, "gateway"),
            "ports": [{"name": "http", "port": GATEWAY_PORT, "targetPort": "http"}],
        },
    }


def replicas_service(owner: Owner) -> Manifest:
    """Headless, admin port only: one DNS record per ready pod (metrics, token health)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(owner, f"{owner.name}-replicas", "gateway-replicas"),
        "spec": {
            "clusterIP": "None",
            "selector": selector(owner, "gateway"),
            "ports": [{"name": "admin", "port": GATEWAY_ADMIN_PORT, "targetPort": "admin"}],
        },
    }


def deployment(
    owner: Owner,
    spec: GatewaySpec,
    providers: Sequence[ServedProvider],
    settings: GatewaySettings,
) -> Manifest:
    """The gateway Deployment; a served LLMProvider's new content hash rolls it."""
    annotations = {rollout_annotation(p.name): p.content_hash for p in providers if p.content_hash}
    template_meta: dict[str, Any] = {"labels": labels(owner, "gateway")}
    if annotations:
        template_meta["annotations"] = annotations
    body: dict[str, Any] = {
        "strategy": {
            "type": "RollingUpdate",  # a rotation never drops below the current capacity
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "selector": {"matchLabels": selector(owner, "gateway")},
        "template": {"metadata": template_meta, "spec": pod_spec(owner, spec, providers, settings)},
    }
    if not spec.hpa.enabled:
        body["replicas"] = spec.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(owner, owner.name, "gateway"),
        "spec": body,
    }


def pod_spec(
    owner: Owner,
    spec: GatewaySpec,
    providers: Sequence[ServedProvider],
    settings: GatewaySettings,
) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [
        {"name": n, "emptyDir": {"sizeLimit": EMPTY_DIR_LIMIT}}
        for n in ("home", "gemini-home", "tmp")
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "home", "mountPath": "/home/llmhub"},
        {"name": "gemini-home", "mountPath": "/home/llmhub/gemini"},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (an emptyDir of the pod)
    ]
    for p in providers:
        if p.provider == "gemini":  # a directory mount (never subPath): rotation reaches the pod
            volumes.append(_secret_volume("gemini-auth", p.secret_name))
            mounts.append(
                {"name": "gemini-auth", "mountPath": "/mnt/auth/gemini", "readOnly": True}
            )
    static = spec.auth.static_keys
    if "static" in spec.auth.modes and static is not None:
        volumes.append(_secret_volume("static-keys", static.secret_name, static.key))
        mounts.append({"name": "static-keys", "mountPath": STATIC_KEYS_DIR, "readOnly": True})
    container = {
        "name": "gateway",
        "image": spec.image or settings.image,
        "imagePullPolicy": "IfNotPresent",
        # args only: the image's ENTRYPOINT (tini) stays PID 1 and reaps the CLIs' children.
        "args": [
            "llmhub-gateway",
            "--host",
            "0.0.0.0",  # noqa: S104 (inside the pod; the NetworkPolicy admits callers)
            "--port",
            str(GATEWAY_PORT),
            "--admin-port",
            str(GATEWAY_ADMIN_PORT),
        ],
        "env": environment(owner, spec, providers, settings),
        "ports": [
            {"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"},
            {"name": "admin", "containerPort": GATEWAY_ADMIN_PORT, "protocol": "TCP"},
        ],
        "livenessProbe": _probe("/health/live", 5, 15),
        "readinessProbe": _probe("/health/ready", 3, 10),
        "resources": dict(spec.resources) or dict(DEFAULT_RESOURCES),
        "securityContext": dict(CONTAINER_SECURITY),
        "volumeMounts": mounts,
    }
    return {
        "serviceAccountName": owner.name,
        # The kubernetes auth mode sends TokenReviews with this token; else the pod has none.
        "automountServiceAccountToken": "kubernetes" in spec.auth.modes,
        "securityContext": dict(POD_SECURITY),
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": volumes,
    }


def environment(
    owner: Owner,
    spec: GatewaySpec,
    providers: Sequence[ServedProvider],
    settings: GatewaySettings,
) -> list[dict[str, Any]]:
    """The gateway's settings (core/config.py); credentials only of the providers served."""
    env: list[dict[str, Any]] = [_var("HOME", "/home/llmhub"), _var("LOG_LEVEL", "INFO")]
    for p in providers:
        if p.provider == "claude":
            env.append(_from_secret("CLAUDE_CODE_OAUTH_TOKEN", p.secret_name, CLAUDE_TOKEN_KEY))
            env.append(_from_secret("CLAUDE_TOKEN_EXPIRES_AT", p.secret_name, EXPIRES_AT_KEY))
            if p.model:
                env.append(_var("CLAUDE_MODEL", p.model))
        else:
            env.append(_var("GEMINI_AUTH_PATH", DEFAULT_GEMINI_AUTH_PATH))
            env.append(_from_secret("GEMINI_TOKEN_EXPIRES_AT", p.secret_name, EXPIRES_AT_KEY))
            env.append(_var("GEMINI_CLI_HOME", "/home/llmhub/gemini"))
            if p.model:
                env.append(_var("GEMINI_MODEL", p.model))
    service_host = f"{owner.name}.{owner.namespace}.svc.{settings.cluster_domain}"
    hosts = [owner.name, f"{owner.name}.{owner.namespace}", f"{owner.name}.{owner.namespace}.svc"]
    hosts.append(service_host)
    if spec.exposure.ingress_host:
        hosts.append(spec.exposure.ingress_host)
    auth, limits = spec.auth, spec.limits
    env += [
        _var("SCRATCH_DIR", "/tmp/llmhub/sessions"),  # noqa: S108 (the tmp emptyDir)
        _var("MCP_ALLOWED_HOSTS", ",".join(hosts)),
        _var("MCP_RESOURCE_URL", urls(owner, spec, settings)["mcp"]),
        _var("AUTH_MODES", ",".join(auth.modes)),
        _var("AUTH_ADMIN_CALLERS", ",".join(auth.admin_callers)),
    ]
    if "entra" in auth.modes:
        domains = ",".join(f"{d}={t}" for d, t in sorted(auth.entra.domains.items()))
        env += [
            _var("AUTH_ENTRA_AUTHORITY", auth.entra.authority),
            _var("AUTH_ENTRA_TENANTS", ",".join(auth.entra.tenants)),
            _var("AUTH_ENTRA_AUDIENCES", ",".join(auth.entra.audiences)),
            _var("AUTH_ENTRA_DOMAINS", domains),
        ]
    if "kubernetes" in auth.modes:
        env += [
            _var("AUTH_KUBERNETES_AUDIENCE", auth.kubernetes.audience),
            _var("AUTH_KUBERNETES_ALLOWED", ",".join(auth.kubernetes.allowed_service_accounts)),
        ]
    if "static" in auth.modes and auth.static_keys is not None:
        env.append(_var("AUTH_STATIC_KEYS_FILE", f"{STATIC_KEYS_DIR}/{auth.static_keys.key}"))
    env += [
        _var(f"LIMIT_{field.upper()}", str(value))
        for field, value in limits.model_dump().items()  # LIMIT_CALLER_REQUESTS_PER_MINUTE, ...
    ]
    env += _masking(spec, providers)
    redis = spec.redis
    if redis is not None and redis.managed:
        env.append(_var("REDIS_URL", f"redis://{redis_name(owner)}:{REDIS_PORT}/0"))
    elif redis is not None and redis.existing_secret is not None:
        secret = redis.existing_secret
        env.append(_from_secret("REDIS_URL", secret.name, secret.key, optional=False))
    return env


def _masking(spec: GatewaySpec, providers: Sequence[ServedProvider]) -> list[dict[str, Any]]:
    """MASKING_* when the gateway masks or an LLMProvider it serves overrides; none otherwise,
    so a gateway without masking renders (and rolls) as before."""
    masking = spec.masking
    overrides = {p.provider: p.masking for p in providers if p.masking is not None}
    if not (masking.enabled or masking.extra_patterns or overrides):
        return []
    return [
        _var("MASKING_ENABLED", "true" if masking.enabled else "false"),
        _var("MASKING_RECOGNIZERS", ",".join(masking.recognizers) or "all"),
        _var("MASKING_EXTRA_PATTERNS", json.dumps(dict(sorted(masking.extra_patterns.items())))),
        _var("MASKING_PROVIDERS", json.dumps(dict(sorted(overrides.items())))),
    ]


def network_policy(owner: Owner, spec: GatewaySpec) -> Manifest:
    """Callers of the gateway's own namespace, plus the namespaces the spec names; the admin
    port from its own namespace only."""
    callers: list[dict[str, Any]] = [{"podSelector": {}}]
    callers += [
        {"namespaceSelector": {"matchLabels": dict(m)}}
        for m in spec.network_policy.allowed_namespaces
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(owner, owner.name, "gateway"),
        "spec": {
            "podSelector": {"matchLabels": selector(owner, "gateway")},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"ports": [{"port": "http", "protocol": "TCP"}], "from": callers},
                {"ports": [{"port": "admin", "protocol": "TCP"}], "from": [{"podSelector": {}}]},
            ],
        },
    }


def ingress(owner: Owner, spec: GatewaySpec) -> Manifest:
    """The callers' HTTPS entry for ``exposure.ingressHost`` (the controller terminates TLS)."""
    exposure = spec.exposure
    backend = {"service": {"name": owner.name, "port": {"name": "http"}}}
    rule = {
        "host": exposure.ingress_host,
        "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
    }
    body: dict[str, Any] = {"rules": [rule]}
    if exposure.ingress_class_name:
        body["ingressClassName"] = exposure.ingress_class_name
    if exposure.tls_secret_name:
        body["tls"] = [{"hosts": [exposure.ingress_host], "secretName": exposure.tls_secret_name}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(owner, owner.name, "gateway"),
        "spec": body,
    }


def pdb(owner: Owner, spec: GatewaySpec) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(owner, owner.name, "gateway"),
        "spec": {
            "minAvailable": spec.pdb.min_available,
            "selector": {"matchLabels": selector(owner, "gateway")},
        },
    }


def hpa(owner: Owner, spec: GatewaySpec) -> Manifest:
    target = spec.hpa.target_cpu_utilization_percentage
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(owner, owner.name, "gateway"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner.name},
            "minReplicas": spec.hpa.min_replicas,
            "maxReplicas": spec.hpa.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": target},
                    },
                }
            ],
        },
    }


def redis_objects(owner: Owner, settings: GatewaySettings) -> list[Manifest]:
    """One Redis for this gateway only (sessions are short-lived: no persistence), reachable
    from the gateway's pods alone."""
    name = redis_name(owner)
    container = {
        "name": "redis",
        "image": settings.redis_image,
        "args": ["--save", "", "--appendonly", "no"],
        "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": dict(CONTAINER_SECURITY),
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    pod_security = {**POD_SECURITY, "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(owner, name, "redis"),
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": selector(owner, "redis")},
                "template": {
                    "metadata": {"labels": labels(owner, "redis")},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": pod_security,
                        "containers": [container],
                        "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "256Mi"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(owner, name, "redis"),
            "spec": {
                "selector": selector(owner, "redis"),
                "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": "redis"}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(owner, name, "redis"),
            "spec": {
                "podSelector": {"matchLabels": selector(owner, "redis")},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "ports": [{"port": "redis", "protocol": "TCP"}],
                        "from": [{"podSelector": {"matchLabels": selector(owner, "gateway")}}],
                    }
                ],
            },
        },
    ]


def _secret_volume(name: str, secret: str, key: str | None = None) -> dict[str, Any]:
    source: dict[str, Any] = {"secretName": secret, "optional": key is None, "defaultMode": 0o440}
    if key is not None:
        source["items"] = [{"key": key, "path": key}]
    return {"name": name, "secret": source}


def _var(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _from_secret(name: str, secret: str, key: str, *, optional: bool = True) -> dict[str, Any]:
    ref = {"name": secret, "key": key, "optional": optional}
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def _probe(path: str, delay: int, period: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }
