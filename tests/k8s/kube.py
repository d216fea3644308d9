"""Test-side view of the real API server, through the client library the operator uses."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernetes_asyncio import client

from llmhub_common.contract import API_GROUP, API_VERSION, PLURAL
from tests.waiting import eventually

if TYPE_CHECKING:
    from tests.k8s.controlplane import ControlPlane

GROUP, VERSION = API_GROUP, API_VERSION


def provider_body(name: str, namespace: str, vault_url: str, **spec: Any) -> dict[str, Any]:
    full: dict[str, Any] = {
        "provider": "claude",
        "model": "claude-sonnet-4-5-20250929",
        "source": {"azureKeyVault": {"vaultUrl": vault_url, "secretName": f"{name}-token"}},
        "refreshInterval": "2s",
        "gateway": {"deploymentName": "gateway"},
    }
    full.update(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMProvider",
        "metadata": {"name": name, "namespace": namespace},
        "spec": full,
    }


def deployment_body(name: str, image: str = "gateway:test") -> dict[str, Any]:
    """A minimal valid Deployment (pods stay Pending here: there is no kubelet)."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "gateway", "image": image}]},
            },
        },
    }


def decode(secret: client.V1Secret, key: str) -> str:
    return base64.b64decode(secret.data[key]).decode()


@dataclass
class RealKube:
    api: client.ApiClient
    namespace: str
    plane: ControlPlane

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    async def create_namespace(self, name: str) -> None:
        await self.core.create_namespace({"metadata": {"name": name}})

    # -- LLMProviders ------------------------------------------------------------------------

    async def create_provider(
        self, name: str, vault_url: str, *, namespace: str | None = None, **spec: Any
    ) -> dict[str, Any]:
        ns = namespace or self.namespace
        body = provider_body(name, ns, vault_url, **spec)
        return await self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)  # type: ignore[no-any-return]

    async def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        await self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            {"spec": spec},
            _content_type="application/merge-patch+json",
        )

    async def provider(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        ns = namespace or self.namespace
        return await self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)  # type: ignore[no-any-return]

    async def wait_phase(
        self, name: str, phase: str = "Ready", timeout: float = 30
    ) -> dict[str, Any]:
        """The LLMProvider once its status shows ``phase``."""

        def reached(body: dict[str, Any]) -> bool:
            return (body.get("status") or {}).get("phase") == phase

        return await eventually(lambda: self.provider(name), reached, timeout=timeout)

    async def wait_recreated(self, name: str, old_uid: str, timeout: float = 15) -> client.V1Secret:
        """The Secret ``name`` once it exists again with another uid."""

        def recreated(secret: client.V1Secret | None) -> bool:
            return secret is not None and secret.metadata.uid != old_uid

        found = await eventually(lambda: self.secret_or_none(name), recreated, timeout=timeout)
        assert found is not None
        return found

    async def provider_or_none(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.provider(name)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def delete_provider(self, name: str) -> None:
        await self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )

    # -- Secrets, Deployments, Events ----------------------------------------------------------

    async def secret(self, name: str) -> client.V1Secret:
        return await self.core.read_namespaced_secret(name, self.namespace)

    async def secret_or_none(self, name: str) -> client.V1Secret | None:
        try:
            return await self.secret(name)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def create_deployment(self, name: str) -> None:
        await self.apps.create_namespaced_deployment(self.namespace, deployment_body(name))

    async def deployment(self, name: str) -> client.V1Deployment:
        return await self.apps.read_namespaced_deployment(name, self.namespace)

    async def template_annotations(self, name: str) -> dict[str, str]:
        dep = await self.deployment(name)
        return dict(dep.spec.template.metadata.annotations or {})

    async def events(self, reason: str | None = None) -> list[client.CoreV1Event]:
        listed = await self.core.list_namespaced_event(self.namespace)
        return [e for e in listed.items if reason is None or e.reason == reason]

    # -- identities ----------------------------------------------------------------------------

    async def service_account_token(
        self, name: str, namespace: str | None = None, *, audience: str | None = None
    ) -> str:
        """A real bound token for a ServiceAccount, from the TokenRequest API."""
        spec: dict[str, Any] = {"expirationSeconds": 3600}
        if audience:
            spec["audiences"] = [audience]
        answer = await self.core.create_namespaced_service_account_token(
            name, namespace or self.namespace, {"spec": spec}
        )
        return str(answer.status.token)

    async def grant(
        self, service_account: str, rules: list[dict[str, Any]], *, cluster: bool = False
    ) -> None:
        """Bind ``rules`` to a ServiceAccount of this namespace: a Role, or a ClusterRole."""
        rbac = client.RbacAuthorizationV1Api(self.api)
        name = f"{service_account}-{self.namespace}" if cluster else service_account
        kind = "ClusterRole" if cluster else "Role"
        binding = {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
            "subjects": [
                {"kind": "ServiceAccount", "name": service_account, "namespace": self.namespace}
            ],
        }
        if cluster:
            await rbac.create_cluster_role({"metadata": {"name": name}, "rules": rules})
            await rbac.create_cluster_role_binding(binding)
        else:
            await rbac.create_namespaced_role(
                self.namespace, {"metadata": {"name": name}, "rules": rules}
            )
            await rbac.create_namespaced_role_binding(self.namespace, binding)

    def token_kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig that authenticates with ``token`` (e.g. a ServiceAccount's)."""
        ca = base64.b64encode(self.plane.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "t",
                    "cluster": {"server": self.plane.url, "certificate-authority-data": ca},
                }
            ],
            "users": [{"name": "t", "user": {"token": token}}],
            "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
            "current-context": "t",
        }
        path.write_text(json.dumps(config))
        return path
